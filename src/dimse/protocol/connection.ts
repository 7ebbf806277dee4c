// One DICOM association on one TLS socket, built on dcmjs-dimse's network engine
// (its Scp class: the only exported subclass of its Network) with the socket
// handling replaced by our PduGuard. What is kept from dcmjs-dimse: P-DATA
// reassembly, DIMSE command parsing and encoding, the A-ASSOCIATE-AC/RJ and
// A-RELEASE writers, the createStoreWritableStream extension point, transcoding.
// What is replaced (README.md): socket reading and framing, timers, the order of
// processing, request dispatch (so that an exception never escapes), and the
// matching of responses to our own requests (Network.pending never shrinks).

import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { PduGuard, type CloseReason, type GuardLimits } from './guard.js';
import { PcResult, type NegotiatedContext } from './negotiation.js';
import { AbortReasonCode, encodePData, parsePdvs, PduError } from './pdu.js';
import { CommandTag, decodeCommandSet, encodeCommandSet, NO_DATA_SET, readUs } from './command-set.js';
import { drainOrClose } from '../../lib/drain.js';
import { giveBackReadChunk } from '../../lib/read-chunks.js';

const { Scp, Dataset } = dimse;
export type DcmDataset = InstanceType<typeof Dataset>;
export type DcmAssociation = InstanceType<typeof dimse.association.Association>;
export type DcmPresentationContext = InstanceType<typeof dimse.association.PresentationContext>;
export type DcmRequest = InstanceType<typeof dimse.requests.Request>;
export type DcmResponse = InstanceType<typeof dimse.responses.CEchoResponse>;
/** A parsed DIMSE message (request or response) as dcmjs-dimse hands it over. */
export type DcmMessage = DcmRequest & Partial<Pick<DcmResponse, 'getStatus' | 'getMessageIdBeingRespondedTo'>>;

/** dcmjs-dimse internals we rely on (pinned to 0.3.3, see README.md). */
interface NetworkInternals {
  association?: DcmAssociation;
  logId: string;
  dimse?: DcmMessage;
  dimseStoreStream?: Writable;
  _processPdu(data: Buffer): Promise<void>;
  _sendDimse(d: { context: DcmPresentationContext; command: unknown }): void;
}
const networkProto = Scp.prototype as unknown as NetworkInternals;

/** A command set is a few hundred bytes; the largest we accept (PS3.7 §6.3.1). */
export const MAX_COMMAND_BYTES = 64 * 1024;
/** C-FIND/C-GET/C-MOVE identifiers are small; only C-STORE data goes to disk. */
export const MAX_IDENTIFIER_BYTES = 1024 * 1024;

const C_STORE_RQ = 0x0001;
const C_STORE_RSP = 0x8001;

export function isResponse(m: { getCommandFieldType(): number }): boolean {
  return (m.getCommandFieldType() & 0x8000) !== 0;
}

export abstract class DimseConnection extends Scp {
  readonly guard: PduGuard;
  protected readonly pcs = new Map<number, NegotiatedContext>();
  protected log: Logger;
  /** The largest P-DATA-TF we send: the peer's maximum, capped by ours. */
  protected sendPduMax: number;
  private msgId = 0;
  private readonly waiters = new Map<number, { resolve: (status: number) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private storeReady?: Promise<void>;
  private dispatched?: Promise<void>;
  private messagePc?: number;
  private commandBytes = 0;
  private identifierBytes = 0;
  private closing = false;

  constructor(socket: Socket, role: 'acceptor' | 'requestor', limits: GuardLimits, log: Logger) {
    super(socket);
    this.log = log;
    this.sendPduMax = limits.maxPduBytes;
    this.guard = new PduGuard(socket, role, limits, {
      onPdu: (type, pdu) => this.onPdu(type, pdu),
      onClose: (reason, detail) => this.closed(reason, detail),
    });
    // dcmjs-dimse reports its own parse failures this way; they end the association.
    this.on('networkError', (err: Error) => this.guard.abort('protocol-violation', `dcmjs-dimse: ${err?.message ?? 'error'}`, AbortReasonCode.InvalidPduParameter));
  }

  /** dcmjs-dimse's own PDU processing (parsing, reassembly, events). */
  protected dcmjsProcessPdu(pdu: Buffer): Promise<void> {
    return networkProto._processPdu.call(this, pdu);
  }

  protected get net(): NetworkInternals {
    return this as unknown as NetworkInternals;
  }

  /** Replaces dcmjs-dimse's socket handling entirely (README.md defects 2–6): the PduGuard reads the socket. */
  _wrapSocket(): void {}

  protected abstract onPdu(type: number, pdu: Buffer): Promise<void>;

  /** A complete request (never a response) on an accepted presentation context. */
  protected abstract onRequest(pc: NegotiatedContext, request: DcmMessage): Promise<void>;

  protected onClosed(_reason: CloseReason, _detail?: string): void {}

  private closed(reason: CloseReason, detail?: string): void {
    this.closing = true;
    for (const [id, w] of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error('association closed'));
      this.waiters.delete(id);
    }
    // A C-STORE cut off mid-transfer must not leave its temporary file behind.
    const partial = this.net.dimseStoreStream as (Writable & { discard?: () => Promise<void> }) | undefined;
    if (partial?.discard) void partial.discard().catch(() => undefined);
    this.onClosed(reason, detail);
  }

  /** For health checks and tests: what this association holds on to. */
  diagnostics(): { state: string; awaitingResponses: number; dcmjsPending: number; dcmjsRequests: number } {
    const raw = this as unknown as { pending?: unknown[]; requests?: unknown[] };
    return { state: this.guard.state, awaitingResponses: this.waiters.size, dcmjsPending: raw.pending?.length ?? 0, dcmjsRequests: raw.requests?.length ?? 0 };
  }

  /** The presentation contexts of this association, as negotiated. */
  negotiated(): Iterable<NegotiatedContext> {
    return this.pcs.values();
  }

  nextMessageId(): number {
    this.msgId = (this.msgId % 0xffff) + 1;
    return this.msgId;
  }

  /** Dispatches one P-DATA-TF: checks every PDV, then hands them to dcmjs-dimse one at a time. */
  protected async onPData(pdu: Buffer): Promise<void> {
    let pdvs;
    try {
      pdvs = parsePdvs(pdu.subarray(6));
    } catch (e) {
      return this.guard.abort('protocol-violation', e instanceof PduError ? e.reason : 'bad P-DATA-TF', AbortReasonCode.InvalidPduParameter);
    }
    for (const pdv of pdvs) {
      if (this.guard.closed) return;
      const pc = this.pcs.get(pdv.pcId);
      // dcmjs-dimse dispatches P-DATA on rejected contexts too (README.md defect 10).
      if (!pc || pc.result !== PcResult.Accept) {
        return this.guard.abort('protocol-violation', `P-DATA on presentation context ${pdv.pcId}, which was not accepted`, AbortReasonCode.UnexpectedPduParameter);
      }
      const awaitingDataset = this.net.dimse !== undefined;
      if (pdv.command) {
        if (awaitingDataset) return this.guard.abort('protocol-violation', 'command fragment while a data set was expected', AbortReasonCode.UnexpectedPduParameter);
        if (this.messagePc !== undefined && this.messagePc !== pdv.pcId) return this.guard.abort('protocol-violation', 'command fragments on two presentation contexts', AbortReasonCode.UnexpectedPduParameter);
        this.commandBytes += pdv.valueLength;
        if (this.commandBytes > MAX_COMMAND_BYTES) return this.guard.abort('protocol-violation', 'command set too large', AbortReasonCode.InvalidPduParameter);
        this.messagePc = pdv.pcId;
      } else {
        if (!awaitingDataset) return this.guard.abort('protocol-violation', 'data set fragment without a command', AbortReasonCode.UnexpectedPduParameter);
        if (pdv.pcId !== this.messagePc) return this.guard.abort('protocol-violation', 'data set on another presentation context than its command', AbortReasonCode.UnexpectedPduParameter);
        if (this.net.dimse!.getCommandFieldType() !== C_STORE_RQ) {
          this.identifierBytes += pdv.valueLength;
          if (this.identifierBytes > MAX_IDENTIFIER_BYTES) return this.guard.abort('protocol-violation', 'identifier too large', AbortReasonCode.InvalidPduParameter);
        }
      }
      // One PDV per call: after the last fragment of a message dcmjs-dimse would read the
      // next PDV of the same PDU with stale state.
      // A C-STORE-RSP in one fragment answering one of our sub-operations is read here
      // (command-set.ts); everything else goes to dcmjs-dimse.
      const whole = pdv.command && pdv.last && this.commandBytes === pdv.valueLength;
      if (!(whole && this.answerStoreResponse(pdv.item.subarray(6)))) await this.dcmjsProcessPdu(pdvs.length === 1 ? pdu : encodePData([pdv.item]));
      if (pdv.last && (!pdv.command || this.net.dimse === undefined)) {
        this.messagePc = undefined;
        this.identifierBytes = 0;
      }
      if (pdv.last && pdv.command) this.commandBytes = 0;
      // Backpressure for C-STORE data: wait for the temporary file (README.md defect 9).
      const store = this.net.dimseStoreStream;
      if (store && store.writableNeedDrain && !store.destroyed) await drainOrClose(store);
      if (this.storeReady) {
        const s = this.storeReady;
        this.storeReady = undefined;
        await s;
      }
      if (this.dispatched) {
        const d = this.dispatched;
        this.dispatched = undefined;
        await d;
      }
    }
  }

  /**
   * Resolves the waiting sub-operation when `command` is a C-STORE-RSP without a data set
   * (PS3.7 §9.3.1.2) that answers one; false leaves the command to dcmjs-dimse.
   */
  private answerStoreResponse(command: Buffer): boolean {
    const el = decodeCommandSet(command);
    if (!el || readUs(el, CommandTag.CommandField) !== C_STORE_RSP || readUs(el, CommandTag.CommandDataSetType) !== NO_DATA_SET) return false;
    const id = readUs(el, CommandTag.MessageIDBeingRespondedTo);
    const status = readUs(el, CommandTag.Status);
    const w = id === undefined ? undefined : this.waiters.get(id);
    if (!w || status === undefined) return false;
    this.waiters.delete(id!);
    clearTimeout(w.timer);
    w.resolve(status);
    return true;
  }

  /** dcmjs-dimse calls this with the store stream once the last fragment arrived; we wait for the file. */
  createDatasetFromStoreWritableStream(writable: Writable, pc: DcmPresentationContext, callback: (dataset: DcmDataset) => void): void {
    this.storeReady = new Promise<void>((resolve) => {
      const go = () => {
        try {
          callback(new Dataset({}, pc.getAcceptedTransferSyntaxUid() ?? undefined));
        } catch (e) {
          this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'dimse store dispatch failed');
        }
        resolve();
      };
      if (writable.writableFinished) go();
      else {
        writable.once('finish', go);
        writable.once('error', go);
      }
    });
  }

  /** Replaces dcmjs-dimse's dispatch: nothing a handler does can escape as an unhandled rejection. */
  _performDimse(dcmPc: DcmPresentationContext, msg: DcmMessage): void {
    if (isResponse(msg)) {
      const id = msg.getMessageIdBeingRespondedTo?.();
      const w = id === undefined ? undefined : this.waiters.get(id);
      if (w) {
        this.waiters.delete(id!);
        clearTimeout(w.timer);
        w.resolve((msg as unknown as { getStatus?: () => number }).getStatus?.() ?? 0xffff);
      } else this.log.warn({ messageId: id }, 'dimse response to no outstanding request ignored');
      return;
    }
    const pc = this.pcs.get(dcmPc.getPresentationContextId());
    if (!pc) return;
    this.dispatched = this.onRequest(pc, msg).catch((e) => {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'dimse request handler failed');
    });
  }

  /** Waits for the status of the response to one of our requests (C-STORE sub-operations). */
  expectResponse(messageId: number, timeoutMs: number): Promise<number> {
    if (this.closing) return Promise.reject(new Error('association closed'));
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(messageId);
        reject(new Error('no response in time'));
      }, timeoutMs);
      timer.unref();
      this.waiters.set(messageId, { resolve, reject, timer });
    });
  }

  dcmContext(pcId: number): DcmPresentationContext {
    return this.net.association!.getPresentationContext(pcId);
  }

  /**
   * Sends a response (or a request without data). Without a data set the command set is
   * encoded here (command-set.ts: dcmjs costs ~1 ms a message); with one, or with an
   * element outside the command vocabulary, through dcmjs-dimse's encoder. Then honours
   * backpressure.
   */
  async sendMessage(pcId: number, command: unknown): Promise<void> {
    if (this.guard.closed) throw new Error('association closed');
    const msg = command as { getDataset(): unknown; getCommandDataset(): { getElements(): Record<string, unknown> } };
    const encoded = msg.getDataset() ? undefined : encodeCommandSet(msg.getCommandDataset().getElements());
    if (encoded) await this.writeFragments(pcId, true, encoded);
    else this.net._sendDimse.call(this, { context: this.dcmContext(pcId), command });
    await this.guard.writable();
  }

  /** Writes one whole message part (a command set, or a data set in one Buffer) as P-DATA-TF PDUs (writePdvs). */
  private async writeFragments(pcId: number, command: boolean, value: Buffer): Promise<void> {
    await this.writePdvs(pcId, command, [value], value.length, true);
  }

  /**
   * Writes PDVs of the largest size the peer accepts, one P-DATA-TF PDU each, from the
   * front of `queue` (`queued` bytes in all) until at most one PDV's worth is left — or
   * nothing, when `final`: the last PDV carries the last-fragment flag. Headers and values
   * go out as separate buffers of corked batches of about 1 MiB (one writev, no copies; a
   * PDV's value may be the end of one chunk and the start of the next), with backpressure
   * between batches. Chunks are taken off the queue as they are used up; each is given back
   * to the read pool (lib/read-chunks.ts; anything else is ignored there) by the callback
   * of the write that sends its last byte, when the socket no longer needs it (a socket's
   * writes complete in order: its earlier parts are sent by then). Returns the bytes left.
   */
  private async writePdvs(pcId: number, command: boolean, queue: Buffer[], queued: number, final: boolean): Promise<number> {
    const max = this.sendPduMax - 6;
    const more = () => (final ? queued > 0 : queued > max);
    while (more()) {
      let wait = false;
      this.guard.socket.cork();
      try {
        for (let batch = 0; more() && batch < 1024 * 1024; ) {
          if (this.guard.closed) throw new Error('association closed');
          const n = Math.min(max, queued);
          queued -= n;
          batch += n;
          const head = Buffer.allocUnsafe(12);
          head[0] = 0x04;
          head[1] = 0;
          head.writeUInt32BE(n + 6, 2); // PDU length: one PDV item
          head.writeUInt32BE(n + 2, 6); // PDV item length
          head[10] = pcId;
          head[11] = (command ? 1 : 0) | (final && queued === 0 ? 2 : 0);
          this.guard.write(head);
          for (let need = n; need > 0; ) {
            const first = queue[0]!;
            if (first.length <= need) {
              queue.shift();
              need -= first.length;
              if (!this.guard.write(first, giveBackReadChunk)) wait = true;
            } else {
              queue[0] = first.subarray(need);
              if (!this.guard.write(first.subarray(0, need))) wait = true;
              need = 0;
            }
          }
        }
      } finally {
        this.guard.socket.uncork();
      }
      if (wait) await this.guard.writable();
    }
    return queued;
  }

  /**
   * Streams a C-STORE request with its data set exactly as given (no re-encoding,
   * unlike dcmjs-dimse's sendRequests) and resolves with the peer's status.
   */
  async sendStore(o: {
    pcId: number;
    sopClassUid: string;
    sopInstanceUid: string;
    body: AsyncIterable<Buffer> | Buffer;
    moveOriginator?: { aeTitle: string; messageId: number };
    timeoutMs: number;
  }): Promise<number> {
    const messageId = this.nextMessageId();
    // PS3.7 §9.3.1.1: the C-STORE-RQ command set (with the C-MOVE originator, §9.3.1.1 Table 9.3-1).
    const command = encodeCommandSet({
      CommandField: C_STORE_RQ,
      AffectedSOPClassUID: o.sopClassUid,
      MessageID: messageId,
      Priority: 0,
      CommandDataSetType: 0x0000, // anything but 0x0101: a data set follows
      AffectedSOPInstanceUID: o.sopInstanceUid,
      MoveOriginatorApplicationEntityTitle: o.moveOriginator?.aeTitle,
      MoveOriginatorMessageID: o.moveOriginator?.messageId,
    });
    if (!command) throw new Error('C-STORE-RQ command set could not be encoded');
    const response = this.expectResponse(messageId, o.timeoutMs);
    response.catch(() => undefined);
    await this.writeFragments(o.pcId, true, command);
    if (Buffer.isBuffer(o.body)) {
      if (o.body.length === 0) throw new Error('empty data set');
      await this.writeFragments(o.pcId, false, o.body);
    } else {
      // PDVs are cut across chunk boundaries without copying: a PDV's value may be the
      // end of one chunk and the start of the next. The last 1..max bytes wait for the
      // end of the body: the final PDV carries the last-fragment flag.
      const queue: Buffer[] = [];
      let queued = 0;
      for await (const chunk of o.body) {
        if (chunk.length === 0) continue;
        queue.push(chunk);
        queued += chunk.length;
        queued = await this.writePdvs(o.pcId, false, queue, queued, false);
      }
      if (queued === 0) throw new Error('empty data set');
      await this.writePdvs(o.pcId, false, queue, queued, true);
    }
    return await response;
  }
}

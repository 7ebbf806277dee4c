// The PDU guard: the only reader of an association's socket. It frames PDUs from
// the raw byte stream itself (6-byte header, PS3.8 §9.3.1) before anything reaches
// dcmjs-dimse, and enforces what dcmjs-dimse does not (README.md, defects 1–6, 8–9):
//  - a PDU type is checked against the association state when its header arrives,
//    so a P-DATA-TF pipelined behind the A-ASSOCIATE-RQ is an A-ABORT, never a
//    DIMSE message (PS3.8 §9.2 state machine: P-DATA in Sta3 → AA-8);
//  - lengths above our limits are refused from the header, before any buffering;
//  - PDUs are handed on one at a time and the next waits for the previous one's
//    handler, so memory stays bounded (the socket is paused while the queue is full);
//  - timers that really fire: ARTIM (PS3.8 §9.1.5) until the A-ASSOCIATE exchange,
//    idle (no PDU while nothing is in progress, so a slow handler is never cut off),
//    a per-PDU deadline (truncated PDUs, slow senders) and a write-stall deadline
//    (a peer that stops reading).

import type { Socket } from 'node:net';
import { AbortReasonCode, AbortSourceCode, encodeAbort, MAX_ASSOCIATE_PDU_BYTES, PduType } from './pdu.js';
import { drainOrClose } from '../../lib/drain.js';

/** Output buffered per association before writers wait (see writable()). */
const OUTPUT_HIGH_WATER = 1024 * 1024;

export interface GuardLimits {
  /** Largest P-DATA-TF body we accept; what we announce in the Maximum Length item. */
  maxPduBytes: number;
  /** Until the A-ASSOCIATE exchange is done (ARTIM). */
  artimMs: number;
  /** No PDU received while no operation is in progress. */
  idleMs: number;
  /** A PDU whose header has arrived must be complete within this. */
  pduMs: number;
  /** Output that makes no progress for this long means the peer stopped reading. */
  writeStallMs: number;
}

export type GuardState = 'awaiting-associate' | 'negotiating' | 'established' | 'releasing' | 'closed';

export type CloseReason =
  | 'released'
  | 'peer-abort'
  | 'peer-closed'
  | 'socket-error'
  | 'artim-timeout'
  | 'idle-timeout'
  | 'pdu-timeout'
  | 'write-stall'
  | 'protocol-violation'
  | 'local-abort'
  /** The association's credentials were revoked while it was open (scp.ts stillAuthorized). */
  | 'revoked'
  | 'server-shutdown';

export interface GuardHandlers {
  /** A complete PDU (header included), already checked against the state; the next waits for this. */
  onPdu(type: number, pdu: Buffer): Promise<void>;
  /** Exactly once, when the connection is over. `detail` is safe to log. */
  onClose(reason: CloseReason, detail?: string): void;
}

const PDU_TYPES_BY_STATE: Record<'acceptor' | 'requestor', Record<GuardState, readonly number[]>> = {
  acceptor: {
    'awaiting-associate': [PduType.AssociateRq],
    negotiating: [],
    established: [PduType.PData, PduType.ReleaseRq],
    releasing: [],
    closed: [],
  },
  requestor: {
    'awaiting-associate': [PduType.AssociateAc, PduType.AssociateRj],
    negotiating: [],
    established: [PduType.PData],
    releasing: [PduType.PData, PduType.ReleaseRp],
    closed: [],
  },
};

export class PduGuard {
  state: GuardState = 'awaiting-associate';
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected = -1; // total length of the PDU being framed, -1 until its header is complete
  private partialSince = 0;
  private readonly queue: { type: number; pdu: Buffer }[] = [];
  private queuedBytes = 0;
  private pumping = false;
  private busy = 0;
  private lastActivity = Date.now();
  /** When the current phase of the A-ASSOCIATE exchange began (ARTIM runs per phase). */
  private phaseSince = Date.now();
  private stalledSince = 0;
  private readonly timer: NodeJS.Timeout;
  private closeReason?: CloseReason;
  private readonly maxQueuedBytes: number;

  constructor(
    readonly socket: Socket,
    private readonly role: 'acceptor' | 'requestor',
    private readonly limits: GuardLimits,
    private readonly handlers: GuardHandlers,
  ) {
    this.maxQueuedBytes = 2 * (limits.maxPduBytes + 6);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => this.finish(this.buffered > 0 ? 'protocol-violation' : 'peer-closed', this.buffered > 0 ? 'truncated PDU at end of stream' : undefined));
    socket.on('close', () => this.finish('peer-closed'));
    socket.on('error', (e: NodeJS.ErrnoException) => this.finish('socket-error', e.code ?? 'error'));
    socket.on('drain', () => {
      this.stalledSince = 0;
    });
    const shortest = Math.min(limits.artimMs, limits.idleMs, limits.pduMs, limits.writeStallMs);
    this.timer = setInterval(() => this.tick(), Math.max(20, Math.min(1000, Math.floor(shortest / 4))));
    this.timer.unref();
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Marks an operation in progress: the idle timer does not run meanwhile. */
  async track<T>(work: Promise<T>): Promise<T> {
    this.busy++;
    try {
      return await work;
    } finally {
      this.busy--;
      this.lastActivity = Date.now();
    }
  }

  /**
   * Writes unless the connection is over; returns false when the caller should wait (writable()).
   * `written` is called once the socket is done with `buf` (never after an error, nor when nothing was written).
   */
  write(buf: Buffer, written?: (buf: Buffer) => void): boolean {
    if (this.closed || this.socket.destroyed) return true;
    const ok = written ? this.socket.write(buf, (e) => (e ? undefined : written(buf))) : this.socket.write(buf);
    if (!ok && !this.stalledSince) this.stalledSince = Date.now();
    return this.socket.writableLength <= OUTPUT_HIGH_WATER;
  }

  /**
   * Resolves when our output is back under OUTPUT_HIGH_WATER (or the connection is gone).
   * The socket's own high-water mark (16 KiB) would make us wait for every PDU;
   * we allow up to 1 MiB in flight per association, then wait for it to drain.
   */
  async writable(): Promise<void> {
    while (!this.closed && !this.socket.destroyed && this.socket.writableNeedDrain && this.socket.writableLength > OUTPUT_HIGH_WATER) {
      if (!this.stalledSince) this.stalledSince = Date.now();
      await drainOrClose(this.socket);
    }
  }

  /** Sends A-ABORT and closes (PS3.8 §7.3.1: the transport is closed after an A-ABORT). */
  abort(reason: CloseReason, detail: string, abortReason: number = AbortReasonCode.NotSpecified, source: number = AbortSourceCode.ServiceProvider): void {
    if (this.closed) return;
    if (!this.socket.destroyed && this.socket.writable && !this.socket.writableNeedDrain) this.socket.write(encodeAbort(source, abortReason));
    this.finish(reason, detail);
  }

  /** Closes the transport after flushing what was written (A-RELEASE-RP, A-ASSOCIATE-RJ). */
  close(reason: CloseReason, detail?: string): void {
    this.finish(reason, detail);
  }

  private finish(reason: CloseReason, detail?: string): void {
    if (this.closeReason) return;
    this.closeReason = reason;
    this.state = 'closed';
    clearInterval(this.timer);
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.chunks = [];
    this.buffered = 0;
    const s = this.socket;
    if (!s.destroyed) {
      if (reason === 'write-stall' || reason === 'socket-error' || s.writableNeedDrain) s.destroy();
      else {
        s.end();
        // PS3.8 §9.1.5: do not wait forever for the peer to close its side.
        setTimeout(() => s.destroy(), 2000).unref();
      }
    }
    try {
      this.handlers.onClose(reason, detail);
    } catch {
      // The close handler must never take the process down.
    }
  }

  private tick(): void {
    if (this.closed) return;
    const now = Date.now();
    if ((this.state === 'awaiting-associate' || this.state === 'negotiating') && now - this.phaseSince > this.limits.artimMs) {
      // ARTIM expired (PS3.8 §9.2, AA-2): close without an A-ABORT before an association exists.
      if (this.state === 'negotiating' && this.role === 'acceptor') this.close('artim-timeout', 'association not decided in time');
      else this.close('artim-timeout', this.role === 'acceptor' ? 'no A-ASSOCIATE-RQ in time' : 'no A-ASSOCIATE-AC in time');
      return;
    }
    if (this.expected >= 0 || this.buffered > 0) {
      if (now - this.partialSince > this.limits.pduMs) return this.abort('pdu-timeout', 'incomplete PDU', AbortReasonCode.NotSpecified);
    }
    // dcmjs-dimse writes responses straight to the socket, so a stall is also noticed here, not only in write().
    if (this.socket.writableNeedDrain && !this.stalledSince) this.stalledSince = now;
    if (this.stalledSince && this.socket.writableNeedDrain && now - this.stalledSince > this.limits.writeStallMs) {
      this.finish('write-stall', 'peer stopped reading');
      return;
    }
    if (this.state === 'established' && this.busy === 0 && !this.pumping && this.queue.length === 0 && this.buffered === 0 && now - this.lastActivity > this.limits.idleMs) {
      this.abort('idle-timeout', 'no activity', AbortReasonCode.NotSpecified);
    }
  }

  private onData(d: Buffer): void {
    if (this.closed) return;
    this.lastActivity = Date.now();
    if (this.buffered === 0) this.partialSince = this.lastActivity;
    this.chunks.push(d);
    this.buffered += d.length;
    try {
      this.frame();
    } catch (e) {
      this.abort('protocol-violation', e instanceof Error ? e.message : 'framing error', AbortReasonCode.UnrecognizedPdu);
    }
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  private peekHeader(): Buffer {
    if (this.chunks[0].length >= 6) return this.chunks[0];
    const h = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [h];
    return h;
  }

  private frame(): void {
    while (!this.closed) {
      if (this.expected < 0) {
        if (this.buffered < 6) return;
        const h = this.peekHeader();
        const type = h[0];
        const length = h.readUInt32BE(2);
        if (type < PduType.AssociateRq || type > PduType.Abort) {
          return this.abort('protocol-violation', `unknown PDU type 0x${type.toString(16)}`, AbortReasonCode.UnrecognizedPdu);
        }
        // A-ABORT from the peer: honoured at once, whatever is queued (PS3.8 §9.2, AA-3).
        if (type === PduType.Abort) {
          if (length !== 4) return this.abort('protocol-violation', 'bad A-ABORT length', AbortReasonCode.InvalidPduParameter);
          this.finish('peer-abort');
          return;
        }
        const allowed = PDU_TYPES_BY_STATE[this.role][this.state];
        if (!allowed.includes(type)) {
          const what = type === PduType.PData && this.state !== 'established' ? 'P-DATA-TF before the association was accepted' : `unexpected PDU type ${type} in state ${this.state}`;
          return this.abort('protocol-violation', what, AbortReasonCode.UnexpectedPdu);
        }
        const limit = type === PduType.PData ? this.limits.maxPduBytes : type <= PduType.AssociateRj ? MAX_ASSOCIATE_PDU_BYTES : 4;
        if (length > limit || ((type === PduType.ReleaseRq || type === PduType.ReleaseRp) && length !== 4)) {
          return this.abort('protocol-violation', `PDU length ${length} above limit ${limit}`, AbortReasonCode.InvalidPduParameter);
        }
        this.expected = 6 + length;
        this.partialSince = Date.now();
        // State transitions happen when the header arrives, so that whatever is pipelined behind it is judged against the new state.
        if (type === PduType.AssociateRq || type === PduType.AssociateAc || type === PduType.AssociateRj) {
          this.state = 'negotiating';
          this.phaseSince = Date.now();
        }
        else if (type === PduType.ReleaseRq) this.state = 'releasing';
        else if (type === PduType.ReleaseRp) this.state = 'closed';
      }
      if (this.buffered < this.expected) return;
      const pdu = this.take(this.expected);
      this.expected = -1;
      if (this.buffered > 0) this.partialSince = Date.now();
      this.enqueue(pdu[0], pdu.length === pdu.buffer.byteLength ? pdu : Buffer.from(pdu));
    }
  }

  private enqueue(type: number, pdu: Buffer): void {
    this.queue.push({ type, pdu });
    this.queuedBytes += pdu.length;
    if (this.queuedBytes > this.maxQueuedBytes) this.socket.pause();
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const { type, pdu } = this.queue.shift()!;
        this.queuedBytes -= pdu.length;
        this.busy++;
        try {
          await this.handlers.onPdu(type, pdu);
        } catch (e) {
          this.abort('local-abort', e instanceof Error ? e.message : 'handler failure', AbortReasonCode.NotSpecified, AbortSourceCode.ServiceUser);
        } finally {
          this.busy--;
          this.lastActivity = Date.now();
        }
        // Our own output is bounded too: a peer that sends requests without reading the responses waits here.
        await this.writable();
        if (this.queuedBytes <= this.maxQueuedBytes / 2 && this.socket.isPaused() && !this.closed) this.socket.resume();
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Called by the owner when the A-ASSOCIATE exchange succeeded. */
  established(): void {
    if (!this.closed) {
      this.state = 'established';
      this.lastActivity = Date.now();
    }
  }

  /** Called by a requestor before it sends A-RELEASE-RQ. */
  releasing(): void {
    if (!this.closed) this.state = 'releasing';
  }
}

// One DIMSE request being served: who asks, on which presentation context, and
// how to answer. Handlers only see this; responses always carry the request's
// message ID and the context's SOP class (dcmjs-dimse's response constructors
// hard-code Study Root for C-FIND/C-GET/C-MOVE, README.md defect 12).

import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import type { IngestTransfer } from '../core/ingest.js';
import type { Principal } from '../core/principal.js';
import type { DcmDataset, DcmMessage, DcmResponse } from './protocol/connection.js';
import type { NegotiatedContext } from './protocol/negotiation.js';
import type { DimseDeps, DimseTuning } from './services.js';
import { DimseStatus, type DimseService, type StatusAnswer } from './status.js';

export interface AssociationScope {
  principal: Principal;
  callingAe: string;
  source: string;
  associationId: string;
  log: Logger;
  deps: DimseDeps & { tuning: DimseTuning };
  /** The association's one store transfer (opened at the first C-STORE, written when the association ends). */
  storeTransfer(): IngestTransfer;
  /** Counts a C-ECHO (logged at the association's end; no audit row of its own). */
  echoed(): void;
}

/** What an Exchange needs from the association it runs on. */
export interface ResponseSink {
  sendMessage(pcId: number, command: unknown): Promise<void>;
}

const { CEchoResponse, CStoreResponse, CFindResponse, CGetResponse, CMoveResponse } = dimse.responses;

export const SERVICE_BY_FIELD: Record<number, DimseService> = {
  0x0001: 'C-STORE',
  0x0020: 'C-FIND',
  0x0010: 'C-GET',
  0x0021: 'C-MOVE',
  0x0030: 'C-ECHO',
};

export interface SubOperationCounts {
  remaining?: number;
  completed: number;
  failed: number;
  warning: number;
}

export class Exchange {
  cancelled = false;
  finalSent = false;
  readonly messageId: number;
  readonly service: DimseService;

  constructor(
    readonly scope: AssociationScope,
    readonly pc: NegotiatedContext,
    readonly request: DcmMessage,
    private readonly sink: ResponseSink,
    private readonly onFinal: () => void,
  ) {
    this.messageId = request.getMessageId();
    this.service = SERVICE_BY_FIELD[request.getCommandFieldType()];
  }

  /** The command set element `name` (dcmjs naturalized keyword). */
  command<T = unknown>(name: string): T | undefined {
    return (this.request.getCommandDataset().getElement(name) as unknown) as T | undefined;
  }

  /** Builds a response of the right type for this request. */
  response(status: number, o: { comment?: string; counts?: SubOperationCounts; dataset?: DcmDataset } = {}): DcmResponse {
    let rsp: DcmResponse;
    switch (this.service) {
      case 'C-ECHO':
        rsp = new CEchoResponse(status, undefined as unknown as string);
        break;
      case 'C-STORE':
        rsp = new CStoreResponse(status, undefined as unknown as string);
        rsp.setAffectedSopInstanceUid(this.request.getAffectedSopInstanceUid());
        break;
      case 'C-FIND':
        rsp = new CFindResponse(status, undefined as unknown as string);
        break;
      case 'C-GET':
        rsp = new CGetResponse(status, undefined as unknown as string);
        break;
      case 'C-MOVE':
        rsp = new CMoveResponse(status, undefined as unknown as string);
        break;
      default:
        throw new Error('no response type for this request');
    }
    rsp.setMessageIdBeingRespondedTo(this.messageId);
    rsp.setAffectedSopClassUid(this.pc.abstractSyntax);
    const cmd = rsp.getCommandDataset() as unknown as { setElement(k: string, v: unknown): void; getElements(): Record<string, unknown> };
    // dcmjs-dimse puts `undefined` in ErrorComment; drop it unless we have a (safe) comment for a failure.
    delete cmd.getElements().ErrorComment;
    if (o.comment && status !== DimseStatus.Success && status !== DimseStatus.Pending) cmd.setElement('ErrorComment', o.comment.slice(0, 64));
    if (o.counts) {
      // PS3.7 §9.3.3.2 / §9.3.4.2: Remaining only in pending (and cancel) responses.
      if (o.counts.remaining !== undefined) cmd.setElement('NumberOfRemainingSuboperations', o.counts.remaining);
      cmd.setElement('NumberOfCompletedSuboperations', o.counts.completed);
      cmd.setElement('NumberOfFailedSuboperations', o.counts.failed);
      cmd.setElement('NumberOfWarningSuboperations', o.counts.warning);
    }
    if (o.dataset) rsp.setDataset(o.dataset);
    return rsp;
  }

  /** A pending response (C-FIND match, C-GET/C-MOVE progress). */
  async pending(rsp: DcmResponse): Promise<void> {
    if (this.finalSent) throw new Error('final response already sent');
    await this.sink.sendMessage(this.pc.id, rsp);
    // Let the PDU loop run between responses: a C-CANCEL must be seen while we are still sending.
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** The final response; the association may take the next request as soon as it is queued. */
  async final(rsp: DcmResponse): Promise<void> {
    if (this.finalSent) return;
    this.finalSent = true;
    this.onFinal();
    await this.sink.sendMessage(this.pc.id, rsp);
  }

  async fail(a: StatusAnswer, counts?: SubOperationCounts): Promise<void> {
    await this.final(this.response(a.status, { comment: a.comment, counts }));
  }
}

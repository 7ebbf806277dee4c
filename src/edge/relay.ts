// One relayed association: the near side is the peer that requests it (the device
// upstream, Tresor downstream), the far side the one that accepts it. Both sockets
// are read by dimse/'s PduGuard, so the edge frames and bounds PDUs exactly like
// Tresor does (length limits from the header, ARTIM, per-PDU deadline, write-stall,
// backpressure: a PDU is handed on only after the other side took the previous one).
//
// Nothing leaves the edge before `decide` said yes on the A-ASSOCIATE-RQ: the far
// connection is only opened afterwards, one tick later, so that PDUs pipelined behind
// the request (a P-DATA-TF before the A-ASSOCIATE-AC: PS3.8 §9.2, AA-8) are judged
// first and end the association with an A-ABORT. The edge never reads DIMSE messages.
//
// Every way the far side can fail before it accepted (connection refused, TLS
// failure, no answer in time, closed) gives the near side an A-ASSOCIATE-RJ
// (PS3.8 §9.3.4), never a silent close or a hang.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { PduGuard, type CloseReason, type GuardLimits } from '../dimse/protocol/guard.js';
import type { RefusalLog } from './refusal-log.js';
import { AbortReasonCode, AbortSourceCode, encodeAssociateRj, parseAssociateRq, PduError, PduType, RejectCode, type AssociateRq } from '../dimse/protocol/pdu.js';

export interface Rejection {
  result: number;
  source: number;
  reason: number;
}

/** PS3.8 Table 9-21: what a refused requestor hears (the same for every policy reason). */
export const POLICY_REJECTION: Rejection = { result: RejectCode.ResultPermanent, source: RejectCode.SourceServiceUser, reason: RejectCode.CallingAeNotRecognized };
/** The far side could not be reached or did not answer: try again later. */
export const UNREACHABLE_REJECTION: Rejection = { result: RejectCode.ResultTransient, source: RejectCode.SourcePresentation, reason: RejectCode.TemporaryCongestion };
/** The far side's TLS identity did not verify (or it refused ours): retrying will not help. */
export const TLS_REJECTION: Rejection = { result: RejectCode.ResultPermanent, source: RejectCode.SourceServiceUser, reason: RejectCode.NoReasonGiven };
const MALFORMED_REJECTION: Rejection = { result: RejectCode.ResultPermanent, source: RejectCode.SourceAcse, reason: RejectCode.NoReasonGiven };

export class ConnectError extends Error {
  constructor(
    message: string,
    readonly rejection: Rejection,
  ) {
    super(message);
  }
}

export type Verdict =
  | { ok: true; forward: Buffer; connect: () => Promise<Socket>; log: Record<string, unknown> }
  | { ok: false; reason: string; rejection: Rejection; log?: Record<string, unknown> };

export interface RelayOptions {
  socket: Socket;
  source: string;
  /** Limits of both sides; P-DATA-TF above maxPduBytes is an A-ABORT. */
  limits: GuardLimits;
  /** The far connection, TCP (+ TLS) included, must be up within this (part of ARTIM). */
  connectMs: number;
  log: Logger;
  /** Synchronous: the checks on the A-ASSOCIATE-RQ, before anything is forwarded. */
  decide(rq: AssociateRq, pdu: Buffer): Verdict;
  /** Edits the far side's A-ASSOCIATE-AC before the near side sees it. */
  editAc(pdu: Buffer): Buffer;
  /** Logs a policy refusal (rate-limited: refusal-log.ts). */
  refused: RefusalLog;
}

/** Hands `pdu` to the other side and waits until it was taken; both sides count as active. */
async function forward(to: PduGuard, pdu: Buffer): Promise<void> {
  await to.track(
    (async () => {
      to.write(pdu);
      await to.writable();
    })(),
  );
}

export function relay(o: RelayOptions): void {
  let far: PduGuard | undefined;
  let log = o.log;

  const near: PduGuard = new PduGuard(o.socket, 'acceptor', o.limits, {
    onPdu: async (type, pdu) => {
      if (type === PduType.AssociateRq) return onRq(pdu);
      if (!far || far.closed) return near.abort('local-abort', 'far side gone', AbortReasonCode.NotSpecified);
      if (type === PduType.ReleaseRq) far.releasing();
      await forward(far, pdu);
    },
    onClose: (reason, detail) => {
      log.info({ side: 'near', reason, detail }, 'edge association closed');
      if (!far || far.closed) return;
      if (reason === 'released') far.close('released');
      else if (reason === 'peer-abort') far.abort('local-abort', 'near side aborted', AbortReasonCode.NotSpecified, AbortSourceCode.ServiceUser);
      else far.abort('local-abort', `near side: ${reason}`, AbortReasonCode.NotSpecified);
    },
  });

  const reject = (r: Rejection, why: string) => {
    near.write(encodeAssociateRj(r.result, r.source, r.reason));
    near.close('released', why);
  };

  async function onRq(pdu: Buffer): Promise<void> {
    let rq: AssociateRq;
    try {
      rq = parseAssociateRq(pdu.subarray(6));
    } catch (e) {
      o.refused(log, { source: o.source, reason: 'malformed-request', detail: e instanceof PduError ? e.reason : 'malformed' });
      return reject(MALFORMED_REJECTION, 'malformed request');
    }
    const v = o.decide(rq, pdu);
    if (!v.ok) {
      o.refused(log, { source: o.source, callingAe: rq.callingAe, calledAe: rq.calledAe, reason: v.reason, ...v.log });
      return reject(v.rejection, v.reason);
    }
    log = log.child({ callingAe: rq.callingAe, ...v.log });
    // One tick: whatever arrived with the request is framed (and judged) before we connect.
    await new Promise((r) => setImmediate(r));
    if (near.closed) return;
    let socket: Socket;
    try {
      socket = await v.connect();
    } catch (e) {
      const rj = e instanceof ConnectError ? e.rejection : UNREACHABLE_REJECTION;
      o.refused(log, { reason: 'far-side-failed', detail: e instanceof Error ? e.message : String(e) });
      if (!near.closed) reject(rj, 'far side failed');
      return;
    }
    if (near.closed) {
      socket.destroy();
      return;
    }
    // The near side's ARTIM started with its request; the far side gets what is left of it.
    const farLimits = { ...o.limits, artimMs: Math.max(1000, o.limits.artimMs - o.connectMs - 1000) };
    far = new PduGuard(socket, 'requestor', farLimits, { onPdu: onFarPdu, onClose: onFarClose });
    far.write(v.forward);
  }

  async function onFarPdu(type: number, pdu: Buffer): Promise<void> {
    const f = far!;
    switch (type) {
      case PduType.AssociateAc: {
        let ac: Buffer;
        try {
          ac = o.editAc(pdu);
        } catch (e) {
          f.abort('protocol-violation', e instanceof PduError ? e.reason : 'bad A-ASSOCIATE-AC', AbortReasonCode.InvalidPduParameter);
          return;
        }
        // Both states change before the AC leaves, so the near side's first P-DATA is in order.
        near.established();
        f.established();
        log.info('edge association established');
        await forward(near, ac);
        return;
      }
      case PduType.AssociateRj:
        log.info({ reason: 'rejected-by-far-side', rj: [pdu[7], pdu[8], pdu[9]] }, 'edge association refused');
        near.write(pdu);
        near.close('released', 'rejected by the far side');
        f.close('released');
        return;
      case PduType.PData:
        return forward(near, pdu);
      case PduType.ReleaseRp:
        near.write(pdu);
        near.close('released');
        f.close('released');
        return;
      default:
        f.abort('protocol-violation', `unexpected PDU type ${type}`, AbortReasonCode.UnexpectedPdu);
    }
  }

  function onFarClose(reason: CloseReason, detail?: string): void {
    log.info({ side: 'far', reason, detail }, 'edge association closed');
    if (near.closed) return;
    if (near.state === 'negotiating') {
      // Before the far side decided: the requestor gets an answer, not a hang.
      reject(UNREACHABLE_REJECTION, `far side ${reason} before answering`);
      return;
    }
    if (reason === 'released') near.close('released');
    else near.abort('local-abort', `far side: ${reason}`, AbortReasonCode.NotSpecified);
  }
}

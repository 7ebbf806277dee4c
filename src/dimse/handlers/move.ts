// C-MOVE (PS3.4 C.4.2): only to a registered device (its host and port come from
// its record, never from the request: PS3.4 leaves the mapping to the SCP), over
// TLS with Tresor's certificate. What is sent is what both the requestor and the
// destination device may read; what only the requestor may read is counted as
// failed. Unknown destination: 0xA801.

import type { Exchange } from '../exchange.js';
import { TS } from '../../core/dicom/transfer-syntaxes.js';
import { SopClass } from '../protocol/negotiation.js';
import { oneAhead } from '../../lib/one-ahead.js';
import { classify, isAnswer, listReadable, prepareSubOperation, retrieveRequestFrom, runSubOperations } from '../retrieval.js';
import type { StoredInstance } from '../services.js';
import { DimseStatus } from '../status.js';
import { connectStoreScu, type StoreScu } from '../store-scu.js';

/** One context per (SOP class, stored syntax), plus a native fallback per SOP class for transcoding. */
function proposals(instances: StoredInstance[]): { abstractSyntax: string; transferSyntaxes: string[] }[] {
  const out = new Map<string, { abstractSyntax: string; transferSyntaxes: string[] }>();
  for (const i of instances) {
    out.set(`${i.sopClassUid}|${i.transferSyntaxUid}`, { abstractSyntax: i.sopClassUid, transferSyntaxes: [i.transferSyntaxUid] });
  }
  for (const i of instances) {
    if (i.transferSyntaxUid !== TS.explicitLittle && i.transferSyntaxUid !== TS.implicitLittle) {
      out.set(`${i.sopClassUid}|native`, { abstractSyntax: i.sopClassUid, transferSyntaxes: [TS.explicitLittle, TS.implicitLittle] });
    }
  }
  return [...out.values()].slice(0, 128);
}

export async function handleMove(ex: Exchange): Promise<void> {
  const { scope } = ex;
  const { retrieve, tuning, authenticator, config } = scope.deps;
  const model = ex.pc.abstractSyntax === SopClass.PatientRootMove ? 'patient' : 'study';
  const destinationAe = String(ex.command<string>('MoveDestination') ?? '').trim();
  const req = retrieveRequestFrom(ex, model);
  if (isAnswer(req)) return ex.fail(req);

  let result = { completed: 0, failed: 0, warning: 0 };
  let matched = 0;
  let scu: StoreScu | undefined;
  // One `retrieve` row for the C-MOVE, written by the core (core/retrieve.ts `run`).
  const door = { via: 'dimse' as const, source: scope.source, details: { association: scope.associationId, operation: 'C-MOVE', destination: destinationAe.slice(0, 16), level: req.level, model } };
  try {
    await retrieve.run(scope.principal, door, async (r) => {
      const destination = destinationAe ? await authenticator.moveDestination(destinationAe) : null;
      if (!destination) {
        r.failed('move-destination-unknown', 'denied');
        scope.log.info({ op: 'C-MOVE', destination: destinationAe.slice(0, 16) }, 'dimse move refused: unknown destination');
        return await ex.fail({ status: DimseStatus.MoveDestinationUnknown, comment: 'move-destination-unknown' });
      }
      const mine = await listReadable((_p, q) => r.list(q), scope.principal, req);
      matched = mine.length;
      if (mine.length === 0) {
        r.failed('no-matching-instances');
        return await ex.fail({ status: DimseStatus.UnableToProcess, comment: 'no-matching-instances' });
      }
      // The destination's own read scope (it is a principal like any other); a scope check, not a retrieve of its own.
      const theirs = new Set((await listReadable(retrieve.list.bind(retrieve), destination.principal, req)).map((i) => i.sopInstanceUid));
      const sendable = mine.filter((i) => theirs.has(i.sopInstanceUid));
      if (sendable.length === 0) {
        r.failed('destination-not-allowed', 'denied');
        r.note({ completed: 0, failed: mine.length, warning: 0 });
        scope.log.info({ op: 'C-MOVE', destination: destinationAe, matched }, 'dimse move refused: destination may not read');
        return await ex.fail({ status: DimseStatus.OutOfResourcesSubOperations, comment: 'destination-not-allowed' }, { completed: 0, failed: mine.length, warning: 0 });
      }
      try {
        scu = await connectStoreScu({
          host: destination.host,
          port: destination.port,
          callingAe: config.aeTitle,
          calledAe: destinationAe,
          pki: scope.deps.pki,
          fingerprint256: destination.fingerprint256,
          contexts: proposals(sendable),
          limits: { maxPduBytes: config.limits.maxPduBytes, artimMs: tuning.moveConnectTimeoutMs, idleMs: tuning.idleMs, pduMs: tuning.pduMs, writeStallMs: tuning.writeStallMs },
          connectTimeoutMs: tuning.moveConnectTimeoutMs,
          log: scope.log.child({ moveDestination: destinationAe }),
        });
      } catch (e) {
        r.failed('destination-unreachable');
        r.note({ completed: 0, failed: mine.length, warning: 0 });
        scope.log.warn({ op: 'C-MOVE', destination: destinationAe, err: e instanceof Error ? e.message : String(e) }, 'dimse move: destination unreachable');
        return await ex.fail({ status: DimseStatus.OutOfResourcesSubOperations, comment: 'destination-unreachable' }, { completed: 0, failed: mine.length, warning: 0 });
      }
      const conn = scu;
      const allowed = new Set(sendable.map((i) => i.sopInstanceUid));
      // The next sendable instance is opened while the destination stores this one (lib/one-ahead.ts).
      const ahead = oneAhead(mine, {
        prepare: (inst) => prepareSubOperation(conn.negotiated(), inst, () => r.open(inst, { reusableChunks: true }), tuning.maxTranscodeBytes, scope.deps.pixels),
        release: (ready) => ready.dispose(),
        wanted: (i) => allowed.has(mine[i].sopInstanceUid),
      });
      try {
        result = await runSubOperations(ex, mine, async (inst, index) => {
          if (!allowed.has(inst.sopInstanceUid) || conn.guard.closed) return 'failed';
          const ready = await ahead.take(index);
          try {
            if (!ready.choice) return 'failed';
            const status = await conn.sendStore({
              pcId: ready.choice.pcId,
              sopClassUid: inst.sopClassUid,
              sopInstanceUid: inst.sopInstanceUid,
              body: await ready.body(),
              moveOriginator: { aeTitle: scope.callingAe, messageId: ex.messageId },
              timeoutMs: tuning.subOpTimeoutMs,
            });
            return classify(status);
          } finally {
            ready.dispose();
          }
        });
      } finally {
        ahead.close();
      }
      r.note({ ...result, cancelled: ex.cancelled });
      if (result.failed !== 0) r.failed();
    });
  } finally {
    if (scu) await scu.release(tuning.subOpTimeoutMs).catch(() => scu?.abort());
    scope.log.info({ op: 'C-MOVE', destination: destinationAe, level: req.level, matched, ...result, cancelled: ex.cancelled }, 'dimse move');
  }
}

// C-MOVE (PS3.4 C.4.2): only to a registered device (its host and port come from
// its record, never from the request: PS3.4 leaves the mapping to the SCP), over
// TLS with Tresor's certificate. What is sent is what both the requestor and the
// destination device may read; what only the requestor may read is counted as
// failed. Unknown destination: 0xA801.

import type { Exchange } from '../exchange.js';
import { SopClass, Ts } from '../protocol/negotiation.js';
import { chooseContext, classify, datasetBody, isAnswer, listReadable, retrieveRequestFrom, runSubOperations } from '../retrieval.js';
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
    if (i.transferSyntaxUid !== Ts.ExplicitLittle && i.transferSyntaxUid !== Ts.ImplicitLittle) {
      out.set(`${i.sopClassUid}|native`, { abstractSyntax: i.sopClassUid, transferSyntaxes: [Ts.ExplicitLittle, Ts.ImplicitLittle] });
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

  let outcome: 'success' | 'failure' | 'denied' = 'failure';
  let result = { completed: 0, failed: 0, warning: 0 };
  let studyUids: string[] = [];
  let matched = 0;
  let scu: StoreScu | undefined;
  try {
    const destination = destinationAe ? await authenticator.moveDestination(destinationAe) : null;
    if (!destination) {
      outcome = 'denied';
      scope.log.info({ op: 'C-MOVE', destination: destinationAe.slice(0, 16) }, 'dimse move refused: unknown destination');
      return await ex.fail({ status: DimseStatus.MoveDestinationUnknown, comment: 'move-destination-unknown' });
    }
    const mine = await listReadable(retrieve.list.bind(retrieve), scope.principal, req);
    matched = mine.length;
    studyUids = [...new Set(mine.map((i) => i.studyUid))];
    if (mine.length === 0) return await ex.fail({ status: DimseStatus.UnableToProcess, comment: 'no-matching-instances' });
    // The destination's own read scope (it is a principal like any other).
    const theirs = new Set((await listReadable(retrieve.list.bind(retrieve), destination.principal, req)).map((i) => i.sopInstanceUid));
    const sendable = mine.filter((i) => theirs.has(i.sopInstanceUid));
    if (sendable.length === 0) {
      outcome = 'denied';
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
      scope.log.warn({ op: 'C-MOVE', destination: destinationAe, err: e instanceof Error ? e.message : String(e) }, 'dimse move: destination unreachable');
      return await ex.fail({ status: DimseStatus.OutOfResourcesSubOperations, comment: 'destination-unreachable' }, { completed: 0, failed: mine.length, warning: 0 });
    }
    const conn = scu;
    const allowed = new Set(sendable.map((i) => i.sopInstanceUid));
    result = await runSubOperations(ex, mine, async (inst) => {
      if (!allowed.has(inst.sopInstanceUid) || conn.guard.closed) return 'failed';
      const choice = chooseContext(conn.negotiated(), inst);
      if (!choice) return 'failed';
      const body = await datasetBody(() => retrieve.open(inst), inst, choice.transcodeTo, tuning.maxTranscodeBytes);
      const status = await conn.sendStore({
        pcId: choice.pcId,
        sopClassUid: inst.sopClassUid,
        sopInstanceUid: inst.sopInstanceUid,
        body,
        moveOriginator: { aeTitle: scope.callingAe, messageId: ex.messageId },
        timeoutMs: tuning.subOpTimeoutMs,
      });
      return classify(status);
    });
    outcome = result.failed === 0 ? 'success' : 'failure';
  } finally {
    if (scu) await scu.release(tuning.subOpTimeoutMs).catch(() => scu?.abort());
    scope.log.info({ op: 'C-MOVE', destination: destinationAe, level: req.level, matched, ...result, cancelled: ex.cancelled }, 'dimse move');
    await scope.deps.audit
      .record({
        action: 'dimse.move',
        outcome,
        principal: { kind: scope.principal.kind, id: scope.principal.id, name: scope.principal.name },
        source: scope.source,
        studyUids,
        details: { association: scope.associationId, destination: destinationAe, level: req.level, matched, completed: result.completed, failed: result.failed, warning: result.warning, cancelled: ex.cancelled },
      })
      .catch((e) => scope.log.error({ err: String(e) }, 'audit failed'));
  }
}

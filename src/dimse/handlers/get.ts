// C-GET (PS3.4 C.4.3): the instances the principal may read come back as C-STORE
// sub-operations on the same association, in the stored transfer syntax when the
// requestor accepted it (byte for byte), otherwise transcoded to a native syntax
// it accepted, otherwise counted as failed. Nothing readable = failure, the same
// answer for "does not exist" and "not yours" (ARCHITECTURE.md rule 3).

import type { DimseConnection } from '../protocol/connection.js';
import type { Exchange } from '../exchange.js';
import { SopClass } from '../protocol/negotiation.js';
import { chooseContext, classify, datasetBody, isAnswer, listReadable, retrieveRequestFrom, runSubOperations } from '../retrieval.js';
import { DimseStatus } from '../status.js';

export async function handleGet(ex: Exchange, conn: DimseConnection): Promise<void> {
  const { scope } = ex;
  const model = ex.pc.abstractSyntax === SopClass.PatientRootGet ? 'patient' : 'study';
  const req = retrieveRequestFrom(ex, model);
  if (isAnswer(req)) return ex.fail(req);
  const { retrieve, tuning } = scope.deps;
  const instances = await listReadable(retrieve.list.bind(retrieve), scope.principal, req);
  const studyUids = [...new Set(instances.map((i) => i.studyUid))];
  let outcome: 'success' | 'failure' = 'failure';
  let result = { completed: 0, failed: 0, warning: 0 };
  try {
    if (instances.length === 0) {
      return await ex.fail({ status: DimseStatus.UnableToProcess, comment: 'no-matching-instances' });
    }
    result = await runSubOperations(ex, instances, async (inst) => {
      const choice = chooseContext(conn.negotiated(), inst);
      if (!choice) return 'failed';
      const body = await datasetBody(() => retrieve.open(inst), inst, choice.transcodeTo, tuning.maxTranscodeBytes);
      const status = await conn.sendStore({ pcId: choice.pcId, sopClassUid: inst.sopClassUid, sopInstanceUid: inst.sopInstanceUid, body, timeoutMs: tuning.subOpTimeoutMs });
      return classify(status);
    });
    outcome = result.failed === 0 ? 'success' : 'failure';
  } finally {
    scope.log.info({ op: 'C-GET', level: req.level, instances: instances.length, ...result, cancelled: ex.cancelled }, 'dimse get');
    await scope.deps.audit
      .record({
        action: 'dimse.get',
        outcome,
        principal: { kind: scope.principal.kind, id: scope.principal.id, name: scope.principal.name },
        source: scope.source,
        studyUids,
        details: { association: scope.associationId, level: req.level, matched: instances.length, completed: result.completed, failed: result.failed, warning: result.warning, cancelled: ex.cancelled },
      })
      .catch((e) => scope.log.error({ err: String(e) }, 'audit failed'));
  }
}

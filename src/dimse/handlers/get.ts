// C-GET (PS3.4 C.4.3): the instances the principal may read come back as C-STORE
// sub-operations on the same association, in the stored transfer syntax when the
// requestor accepted it (byte for byte), otherwise transcoded to a native syntax
// it accepted, otherwise counted as failed. Nothing readable = failure, the same
// answer for "does not exist" and "not yours" (ARCHITECTURE.md rule 3).

import type { DimseConnection } from '../protocol/connection.js';
import type { Exchange } from '../exchange.js';
import { SopClass } from '../protocol/negotiation.js';
import { oneAhead } from '../../lib/one-ahead.js';
import { classify, isAnswer, listReadable, prepareSubOperation, retrieveRequestFrom, runSubOperations } from '../retrieval.js';
import { DimseStatus } from '../status.js';

export async function handleGet(ex: Exchange, conn: DimseConnection): Promise<void> {
  const { scope } = ex;
  const model = ex.pc.abstractSyntax === SopClass.PatientRootGet ? 'patient' : 'study';
  const req = retrieveRequestFrom(ex, model);
  if (isAnswer(req)) return ex.fail(req);
  const { retrieve, tuning } = scope.deps;
  let result = { completed: 0, failed: 0, warning: 0 };
  let matched = 0;
  // One `retrieve` row for the C-GET, written by the core (core/retrieve.ts `run`).
  const door = { via: 'dimse' as const, source: scope.source, details: { association: scope.associationId, operation: 'C-GET', level: req.level, model } };
  try {
    await retrieve.run(scope.principal, door, async (r) => {
      const instances = await listReadable((_p, q) => r.list(q), scope.principal, req);
      matched = instances.length;
      if (instances.length === 0) {
        r.failed('no-matching-instances');
        return ex.fail({ status: DimseStatus.UnableToProcess, comment: 'no-matching-instances' });
      }
      // The next instance is opened while the peer stores this one (lib/one-ahead.ts).
      const ahead = oneAhead(instances, {
        prepare: (inst) => prepareSubOperation(conn.negotiated(), inst, () => r.open(inst, { reusableChunks: true }), tuning.maxTranscodeBytes, scope.deps.pixels),
        release: (ready) => ready.dispose(),
      });
      try {
        result = await runSubOperations(ex, instances, async (inst, index) => {
          const ready = await ahead.take(index);
          try {
            if (!ready.choice) return 'failed';
            const status = await conn.sendStore({ pcId: ready.choice.pcId, sopClassUid: inst.sopClassUid, sopInstanceUid: inst.sopInstanceUid, body: await ready.body(), timeoutMs: tuning.subOpTimeoutMs });
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
    scope.log.info({ op: 'C-GET', level: req.level, instances: matched, ...result, cancelled: ex.cancelled }, 'dimse get');
  }
}

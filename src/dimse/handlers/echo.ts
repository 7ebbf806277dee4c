// C-ECHO (PS3.4 Annex A, PS3.7 §9.1.5): proves the association works; audited like
// every other operation.

import type { Exchange } from '../exchange.js';
import { DimseStatus } from '../status.js';

export async function handleEcho(ex: Exchange): Promise<void> {
  const { scope } = ex;
  await ex.final(ex.response(DimseStatus.Success));
  await scope.deps.audit
    .record({
      action: 'dimse.echo',
      outcome: 'success',
      principal: { kind: scope.principal.kind, id: scope.principal.id, name: scope.principal.name },
      source: scope.source,
      details: { association: scope.associationId },
    })
    .catch((e) => scope.log.error({ err: String(e) }, 'audit failed'));
}

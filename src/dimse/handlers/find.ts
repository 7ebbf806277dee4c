// C-FIND (PS3.4 C.4.1) in the Patient Root and Study Root models, through the core's
// query service (which scopes every match to the principal's departments: other
// departments' studies are simply not found). One pending response per match,
// fetched from the core a page at a time; C-CANCEL is honoured between matches.

import dimse from 'dcmjs-dimse';
import { SopClass } from '../protocol/negotiation.js';
import type { Exchange } from '../exchange.js';
import { identifierToJson, isLevelAllowed, queryLevel, responseIdentifier, TAG_QUERY_RETRIEVE_LEVEL, TAG_SPECIFIC_CHARACTER_SET } from '../identifier.js';
import { DimseStatus, statusForError } from '../status.js';
import type { DicomJson } from '../services.js';

const { Dataset } = dimse;

export async function handleFind(ex: Exchange): Promise<void> {
  const { scope, pc } = ex;
  const identifier = identifierToJson(ex.request.getDataset());
  const level = queryLevel(identifier);
  const model = pc.abstractSyntax === SopClass.PatientRootFind ? 'patient' : 'study';
  if (!isLevelAllowed(level, model)) {
    scope.log.info({ op: 'C-FIND', level, model }, 'dimse find refused: level');
    return ex.fail({ status: DimseStatus.IdentifierDoesNotMatchSopClass, comment: 'invalid-query-retrieve-level' });
  }
  const match: DicomJson = {};
  for (const [tag, el] of Object.entries(identifier)) if (tag !== TAG_QUERY_RETRIEVE_LEVEL && tag !== TAG_SPECIFIC_CHARACTER_SET) match[tag] = el;

  const pageSize = scope.deps.tuning.findPageSize;
  let sent = 0;
  const studies = new Set<string>();
  let outcome: 'success' | 'failure' = 'success';
  let status: number = DimseStatus.Success;
  try {
    for (let offset = 0; ; offset += pageSize) {
      if (ex.cancelled) break;
      const page = await scope.deps.query.find(scope.principal, { level, identifier: match, limit: pageSize, offset });
      for (const m of page.matches) {
        if (ex.cancelled) break;
        const { elements } = responseIdentifier(identifier, m, level, scope.deps.config.aeTitle);
        const studyUid = m['0020000D']?.Value?.[0];
        if (typeof studyUid === 'string' && studies.size < 1000) studies.add(studyUid);
        await ex.pending(ex.response(DimseStatus.Pending, { dataset: new Dataset(elements, pc.transferSyntax) }));
        sent++;
      }
      if (page.matches.length < pageSize || page.matches.length === 0) break;
    }
    if (ex.cancelled) status = DimseStatus.Cancel;
    await ex.final(ex.response(status));
  } catch (e) {
    outcome = 'failure';
    const answer = statusForError(e, 'C-FIND');
    status = answer.status;
    if (!ex.finalSent) await ex.fail(answer);
  } finally {
    scope.log.info({ op: 'C-FIND', level, model, matches: sent, status: status.toString(16), cancelled: ex.cancelled }, 'dimse find');
    await scope.deps.audit
      .record({
        action: 'dimse.find',
        outcome,
        principal: { kind: scope.principal.kind, id: scope.principal.id, name: scope.principal.name },
        source: scope.source,
        studyUids: [...studies],
        details: { association: scope.associationId, level, model, matches: sent, status, cancelled: ex.cancelled },
      })
      .catch((e) => scope.log.error({ err: String(e) }, 'audit failed'));
  }
}

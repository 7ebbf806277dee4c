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
  let status: number = DimseStatus.Success;
  // One audited search for the whole C-FIND, however many pages (core/query-audit.ts);
  // breaking out on C-CANCEL ends it, and its row says so.
  const door = { via: 'dimse' as const, source: scope.source, details: { association: scope.associationId, model, callingAe: scope.callingAe } };
  try {
    for await (const m of scope.deps.query.searchPaged(scope.principal, { level, identifier: match }, door, pageSize)) {
      if (ex.cancelled) break;
      const { elements } = responseIdentifier(identifier, m, level, scope.deps.config.aeTitle);
      await ex.pending(ex.response(DimseStatus.Pending, { dataset: new Dataset(elements, pc.transferSyntax) }));
      sent++;
    }
    if (ex.cancelled) status = DimseStatus.Cancel;
    await ex.final(ex.response(status));
  } catch (e) {
    const answer = statusForError(e, 'C-FIND');
    status = answer.status;
    if (!ex.finalSent) await ex.fail(answer);
  } finally {
    scope.log.info({ op: 'C-FIND', level, model, matches: sent, status: status.toString(16), cancelled: ex.cancelled }, 'dimse find');
  }
}

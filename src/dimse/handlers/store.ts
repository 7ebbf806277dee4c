// C-STORE (PS3.4 Annex B): the data set has been streamed to a temporary Part 10
// file by the time we get here (store-writer.ts); the core ingests and authorizes
// it (ARCHITECTURE.md rule 1), the file is deleted, and the outcome is answered. The
// association's C-STOREs are one audited transfer (PS3.15 A.5.3.10), written when it ends.

import type { Exchange } from '../exchange.js';
import type { Part10TempWriter } from '../store-writer.js';
import { DimseStatus, statusForError, type StatusAnswer } from '../status.js';

const REFUSALS: Record<string, StatusAnswer> = {
  'sop-class-not-supported': { status: DimseStatus.SopClassNotSupported, comment: 'sop-class-not-supported' },
  'sop-class-mismatch': { status: DimseStatus.SopClassNotSupported, comment: 'sop-class-differs-from-context' },
  'invalid-sop-instance-uid': { status: DimseStatus.CannotUnderstand, comment: 'invalid-sop-instance-uid' },
};

async function store(ex: Exchange, writer: Part10TempWriter): Promise<StatusAnswer> {
  const { scope } = ex;
  const sopInstanceUid = ex.request.getAffectedSopInstanceUid();
  const out = await writer.outcome();
  if (!out.ok) {
    const answer =
      out.why === 'refused'
        ? (REFUSALS[out.detail ?? ''] ?? { status: DimseStatus.CannotUnderstand, comment: 'refused' })
        : { status: DimseStatus.OutOfResources, comment: out.why === 'too-large' ? 'object-too-large' : 'out-of-resources' };
    scope.log.warn({ op: 'C-STORE', sopInstanceUid: out.detail === 'invalid-sop-instance-uid' ? undefined : sopInstanceUid, status: answer.status, why: out.why, detail: out.detail }, 'dimse store refused');
    // Counted in the association's transfer row, with its reason.
    scope.storeTransfer().refused(answer.comment ?? out.why);
    return answer;
  }
  try {
    const result = await scope.storeTransfer().ingestFile(out.path, { spooled: { size: out.size, sha256: out.sha256, head: out.head }, lookahead: out.lookahead });
    if (result.sopInstanceUid !== sopInstanceUid) {
      scope.log.warn({ op: 'C-STORE', sopInstanceUid, stored: result.sopInstanceUid }, 'dimse store: data set SOP Instance UID differs from the request');
    }
    scope.log.info({ op: 'C-STORE', sopInstanceUid, studyUid: result.studyUid, outcome: result.outcome, bytes: out.bytes }, 'dimse store');
    return { status: DimseStatus.Success };
  } catch (e) {
    const answer = statusForError(e, 'C-STORE');
    scope.log.warn({ op: 'C-STORE', sopInstanceUid, status: answer.status, reason: answer.comment }, 'dimse store failed');
    return answer;
  }
}

export async function handleStore(ex: Exchange, writer: Part10TempWriter | undefined): Promise<void> {
  if (!writer) return ex.fail({ status: DimseStatus.ProcessingFailure, comment: 'no-data-set' });
  let answer: StatusAnswer;
  try {
    answer = await store(ex, writer);
  } finally {
    // The temporary file is gone before the peer hears anything.
    await writer.discard().catch(() => undefined);
  }
  await ex.final(ex.response(answer.status, { comment: answer.comment }));
}

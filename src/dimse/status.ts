// Core errors → DIMSE statuses (ARCHITECTURE.md rule 4; PS3.7 Annex C, PS3.4 B.2.3,
// C.4.1.1.4, C.4.2.1.5, C.4.3.1.4). The ErrorComment carries only the error's
// reason, which errors.ts guarantees is safe to return; never a message or a stack.

import { isTresorError, reasonSpec, type DimseOverride } from '../core/errors.js';

export const DimseStatus = {
  Success: 0x0000,
  Cancel: 0xfe00,
  Pending: 0xff00,
  ProcessingFailure: 0x0110,
  DuplicateSopInstance: 0x0111,
  UnrecognizedOperation: 0x0211,
  SopClassNotSupported: 0x0122,
  NotAuthorized: 0x0124,
  OutOfResources: 0xa700,
  OutOfResourcesNumberOfMatches: 0xa701,
  OutOfResourcesSubOperations: 0xa702,
  MoveDestinationUnknown: 0xa801,
  DataSetDoesNotMatchSopClass: 0xa900,
  IdentifierDoesNotMatchSopClass: 0xa900,
  CannotUnderstand: 0xc000,
  UnableToProcess: 0xc000,
  SubOperationsCompleteWithFailures: 0xb000,
} as const;

export type DimseService = 'C-STORE' | 'C-FIND' | 'C-GET' | 'C-MOVE' | 'C-ECHO';

export interface StatusAnswer {
  status: number;
  /** Safe for the peer: a machine-readable reason, at most 64 characters (LO). */
  comment?: string;
}

const comment = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);

/** Reasons whose DIMSE answer is not their kind's (core/errors.ts REASONS, `dimse`). */
const STATUS_BY_OVERRIDE: Readonly<Record<DimseOverride, number>> = Object.freeze({
  'not-authorized': DimseStatus.NotAuthorized,
  // PS3.4 B.2.3: 0111H, a different object under an existing SOP Instance UID.
  'duplicate-sop-instance': DimseStatus.DuplicateSopInstance,
  // PS3.4 B.2.3: A900H, the data set does not match what it claims (or was addressed as).
  'data-set-does-not-match-sop-class': DimseStatus.DataSetDoesNotMatchSopClass,
});

/** The failure status to answer for an exception thrown while serving `service`. */
export function statusForError(e: unknown, service: DimseService): StatusAnswer {
  if (!isTresorError(e)) return { status: DimseStatus.ProcessingFailure, comment: 'processing-failure' };
  const c = comment(e.reason);
  const override = reasonSpec(e.reason).dimse;
  if (override) return { status: STATUS_BY_OVERRIDE[override], comment: c };
  switch (e.kind) {
    case 'forbidden':
    case 'unauthenticated':
      return { status: DimseStatus.NotAuthorized, comment: c };
    case 'not-found':
      // Reads: existence never leaks (rule 3) — the caller gets the same answer as for an unknown UID.
      if (service === 'C-STORE') return { status: DimseStatus.NotAuthorized, comment: c };
      return { status: DimseStatus.UnableToProcess, comment: c };
    case 'too-large':
    case 'unavailable':
      // PS3.4 B.2.3 / C.4.x: A700 (out of resources) tells the SCU it may try again later.
      return { status: DimseStatus.OutOfResources, comment: c };
    case 'invalid':
      // A data set that cannot be parsed is C000 (cannot understand, PS3.4 B.2.3); an
      // identifier that is not valid is A900 (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4).
      if (service === 'C-STORE') return { status: DimseStatus.CannotUnderstand, comment: c };
      return { status: DimseStatus.IdentifierDoesNotMatchSopClass, comment: c };
    case 'conflict':
      return { status: DimseStatus.ProcessingFailure, comment: c };
    default:
      return { status: DimseStatus.ProcessingFailure, comment: c };
  }
}

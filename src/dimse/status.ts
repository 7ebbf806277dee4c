// Core errors → DIMSE statuses (ARCHITECTURE.md rule 4; PS3.7 Annex C, PS3.4 B.2.3,
// C.4.1.1.4, C.4.2.1.5, C.4.3.1.4). The ErrorComment carries only the error's
// reason, which errors.ts guarantees is safe to return; never a message or a stack.

import { isTresorError } from '../core/errors.js';

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

/** The failure status to answer for an exception thrown while serving `service`. */
export function statusForError(e: unknown, service: DimseService): StatusAnswer {
  if (!isTresorError(e)) return { status: DimseStatus.ProcessingFailure, comment: 'processing-failure' };
  const c = comment(e.reason);
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
      // A writer in several departments cannot say over DIMSE which one a new study goes to:
      // that is a question of rights (give the device write in one department), not of data.
      if (e.reason === 'department-required') return { status: DimseStatus.NotAuthorized, comment: c };
      if (service === 'C-STORE') {
        return { status: /sop-class|mismatch/.test(e.reason) ? DimseStatus.DataSetDoesNotMatchSopClass : DimseStatus.CannotUnderstand, comment: c };
      }
      return { status: DimseStatus.IdentifierDoesNotMatchSopClass, comment: c };
    case 'conflict':
      // A different object under an existing SOP Instance UID is a duplicate instance (PS3.7 C.5.x 0111H).
      return { status: /duplicate|sop-instance/.test(e.reason) ? DimseStatus.DuplicateSopInstance : DimseStatus.ProcessingFailure, comment: c };
    default:
      return { status: DimseStatus.ProcessingFailure, comment: c };
  }
}

export const isFailure = (status: number): boolean =>
  status !== DimseStatus.Success && status !== DimseStatus.Pending && status !== 0xff01 && status !== DimseStatus.Cancel && (status & 0xf000) !== 0xb000;

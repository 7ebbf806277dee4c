// One error type for the whole core (ARCHITECTURE.md rule 4). Front doors render
// the kind: http/errors.ts as HTTP status codes, dimse/status.ts as DIMSE statuses.
// Messages must be safe to show to the caller: no SQL, no paths, no patient data.

export type ErrorKind =
  | 'not-found'
  | 'forbidden'
  | 'invalid'
  | 'conflict'
  | 'unavailable'
  | 'too-large'
  | 'unauthenticated';

export class TresorError extends Error {
  readonly kind: ErrorKind;
  /** Machine-readable reason, e.g. 'duplicate-sop-instance'; safe to log and to return. */
  readonly reason: string;

  constructor(kind: ErrorKind, reason: string, message?: string, options?: { cause?: unknown }) {
    super(message ?? reason, options);
    this.name = 'TresorError';
    this.kind = kind;
    this.reason = reason;
  }
}

export const notFound = (reason = 'not-found', message?: string) => new TresorError('not-found', reason, message);
export const forbidden = (reason = 'forbidden', message?: string) => new TresorError('forbidden', reason, message);
export const invalid = (reason: string, message?: string) => new TresorError('invalid', reason, message);
export const conflict = (reason: string, message?: string) => new TresorError('conflict', reason, message);
export const unavailable = (reason: string, message?: string, cause?: unknown) =>
  new TresorError('unavailable', reason, message, { cause });
export const tooLarge = (reason: string, message?: string) => new TresorError('too-large', reason, message);
export const unauthenticated = (reason = 'unauthenticated', message?: string) =>
  new TresorError('unauthenticated', reason, message);

export const isTresorError = (e: unknown): e is TresorError => e instanceof TresorError;

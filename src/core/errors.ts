// One error type for the whole core (ARCHITECTURE.md rule 4). Front doors render
// the kind: http/errors.ts as HTTP status codes, dimse/status.ts as DIMSE statuses.
// Messages must be safe to show to the caller: no SQL, no paths, no patient data.
//
// Every reason a TresorError can carry is listed once, in REASONS, with its kind (the
// model is supabase/storage's ErrorCode catalogue): a reason that is not listed, or
// thrown with the wrong kind, is a type error. The reason is the `code` of HTTP error
// bodies and the ErrorComment (0000,0902) of DIMSE failures, so renaming one changes the
// wire: the tests in test/http and test/dimse pin them.

export type ErrorKind =
  | 'not-found'
  | 'forbidden'
  | 'invalid'
  | 'conflict'
  | 'unavailable'
  | 'too-large'
  | 'unauthenticated';

/**
 * A DIMSE answer that differs from the kind's (dimse/status.ts maps these names to
 * status codes; PS3.7 Annex C, PS3.4 B.2.3 and C.4.x).
 */
export type DimseOverride = 'not-authorized' | 'duplicate-sop-instance' | 'data-set-does-not-match-sop-class';

interface ReasonSpec {
  readonly kind: ErrorKind;
  /** Answered over DIMSE with this status instead of the kind's. */
  readonly dimse?: DimseOverride;
  /** An HTTP 401 for this reason says `error="invalid_token"` in its challenge (RFC 6750 §3.1). */
  readonly invalidToken?: true;
}

const spec = <K extends ErrorKind>(kind: K) => ({ kind }) as const;

export const REASONS = {
  // --- not-found: absent, or not visible to the caller (rule 3: the same answer) -------
  'not-found': spec('not-found'),
  'no-certificate': spec('not-found'),
  'no-passcode': spec('not-found'),
  'no-pixel-data': spec('not-found'),
  'no-such-bulkdata': spec('not-found'),
  'no-such-frame': spec('not-found'),
  'object-not-found': spec('not-found'),

  // --- forbidden ------------------------------------------------------------------------
  forbidden: spec('forbidden'),
  // A state-changing request on a cookie session without its CSRF token, or from another origin.
  csrf: spec('forbidden'),
  'cannot-grant': spec('forbidden'),
  'cannot-manage-account': spec('forbidden'),
  'global-admin-required': spec('forbidden'),
  'not-a-user': spec('forbidden'),
  'not-an-administrator': spec('forbidden'),
  'password-change-required': spec('forbidden'),

  // --- unauthenticated --------------------------------------------------------------------
  unauthenticated: spec('unauthenticated'),
  'account-unusable': { kind: 'unauthenticated', invalidToken: true },
  'bad-credentials': spec('unauthenticated'),
  // An open DIMSE association whose device/user was disabled, lost a role, or whose certificate was replaced.
  'credentials-revoked': spec('unauthenticated'),
  'invalid-token': { kind: 'unauthenticated', invalidToken: true },
  locked: spec('unauthenticated'),
  'missing-token': spec('unauthenticated'),
  // A browser session cookie that is unknown, ended, idle too long or past its lifetime.
  'session-expired': spec('unauthenticated'),
  'token-expired': { kind: 'unauthenticated', invalidToken: true },

  // --- conflict ---------------------------------------------------------------------------
  'certificate-in-use': spec('conflict'),
  'department-exists': spec('conflict'),
  'department-not-empty': spec('conflict'),
  'device-exists': spec('conflict'),
  'last-global-admin': spec('conflict'),
  'role-exists': spec('conflict'),
  // A different object under an existing SOP Instance UID (PS3.4 B.2.3 0111H).
  'sop-instance-conflict': { kind: 'conflict', dimse: 'duplicate-sop-instance' },
  'series-in-other-study': spec('conflict'),
  // A study belongs to one department (ARCHITECTURE.md, data model).
  'study-in-other-department': spec('conflict'),
  'user-exists': spec('conflict'),

  // --- too-large --------------------------------------------------------------------------
  'deflated-too-large': spec('too-large'),
  'header-too-large': spec('too-large'),
  'object-too-large': spec('too-large'),
  'request-too-large': spec('too-large'),
  'too-many-parts': spec('too-large'),

  // --- unavailable: ours, or a dependency's; the caller may try again -------------------
  'bad-image-pixel-module': spec('unavailable'),
  'blob-missing': spec('unavailable'),
  'blob-store-unavailable': spec('unavailable'),
  'blob-truncated': spec('unavailable'),
  'bot-unread': spec('unavailable'),
  'ca-key-unavailable': spec('unavailable'),
  // PostgreSQL stopped, restarting or unreachable (db/knex.ts, src/lib/transient.ts).
  'database-unavailable': spec('unavailable'),
  // Decoding stored pixel data (core/dicom/pixels/pixel-codec.ts, issue 14 item 1).
  'decode-busy': spec('unavailable'),
  'decode-failed': spec('unavailable'),
  'decode-timeout': spec('unavailable'),
  'decode-too-large': spec('unavailable'),
  'frame-boundaries-unknown': spec('unavailable'),
  'image-too-large': spec('unavailable'),
  'not-an-image': spec('unavailable'),
  'query-failed': spec('unavailable'),
  'render-failed': spec('unavailable'),
  's3-unavailable': spec('unavailable'),
  'storage-full': spec('unavailable'),
  'storage-unavailable': spec('unavailable'),
  'stored-object-unreadable': spec('unavailable'),
  unhealthy: spec('unavailable'),

  // --- invalid: accounts and administration ----------------------------------------------
  'bad-ae-title': spec('invalid'),
  'bad-department-name': spec('invalid'),
  'bad-destination': spec('invalid'),
  'bad-edge-settings': spec('invalid'),
  'bad-role': spec('invalid'),
  'bad-username': spec('invalid'),
  'cannot-change-self': spec('invalid'),
  'no-data-dir': spec('invalid'),
  'roles-required': spec('invalid'),
  'unknown-department': spec('invalid'),
  'weak-password': spec('invalid'),

  // --- invalid: certificates and TLS material --------------------------------------------
  'bad-certificate': spec('invalid'),
  'bad-csr': spec('invalid'),
  'bad-key-type': spec('invalid'),
  'bad-hostname': spec('invalid'),
  'bad-validity': spec('invalid'),
  'csr-key-unsupported': spec('invalid'),
  'tls-ca-missing': spec('invalid'),
  'tls-cert-expired': spec('invalid'),
  'tls-key-permissions': spec('invalid'),
  'tls-key-too-weak': spec('invalid'),
  'tls-cert-unreadable': spec('invalid'),
  'tls-file-unreadable': spec('invalid'),
  'tls-files-inconsistent': spec('invalid'),
  'tls-key-mismatch': spec('invalid'),
  'tls-key-unreadable': spec('invalid'),
  // master key, sealed keys in the database and the audit key (issues 11 and 14)
  'master-key-missing': spec('invalid'),
  'master-key-permissions': spec('invalid'),
  'master-key-short': spec('invalid'),
  'master-key-exists': spec('invalid'),
  'sealed-key-invalid': spec('invalid'),
  'audit-key-permissions': spec('invalid'),
  'audit-key-invalid': spec('invalid'),
  'tls-key-unsupported': spec('invalid'),

  // --- invalid: stored objects (ingest) ---------------------------------------------------
  // A writer in several departments cannot say over DIMSE which one a new study goes to:
  // that is a question of rights (give the device write in one department), not of data.
  'department-required': { kind: 'invalid', dimse: 'not-authorized' },
  'bad-meta': spec('invalid'),
  malformed: spec('invalid'),
  'missing-attribute': spec('invalid'),
  'not-part10': spec('invalid'),
  // The data set names another study than the one addressed (PS3.4 B.2.3 A900H).
  'study-uid-mismatch': { kind: 'invalid', dimse: 'data-set-does-not-match-sop-class' },
  'too-deep': spec('invalid'),
  truncated: spec('invalid'),
  unreadable: spec('invalid'),

  // --- invalid: queries, retrieval and request parameters --------------------------------
  'bad-attribute-path': spec('invalid'),
  'bad-boundary': spec('invalid'),
  'bad-bulkdata-path': spec('invalid'),
  'bad-columns': spec('invalid'),
  'bad-content-type': spec('invalid'),
  'bad-date': spec('invalid'),
  'bad-datetime': spec('invalid'),
  'bad-delete': spec('invalid'),
  'bad-frame-list': spec('invalid'),
  'bad-frameNumber': spec('invalid'),
  'bad-fuzzymatching': spec('invalid'),
  'bad-identifier': spec('invalid'),
  'bad-includefield': spec('invalid'),
  'bad-limit': spec('invalid'),
  'bad-multipart': spec('invalid'),
  'bad-number': spec('invalid'),
  'bad-offset': spec('invalid'),
  'bad-quality': spec('invalid'),
  'bad-query-level': spec('invalid'),
  'bad-range': spec('invalid'),
  'bad-request-type': spec('invalid'),
  'bad-rows': spec('invalid'),
  'bad-sequence-key': spec('invalid'),
  'bad-tag': spec('invalid'),
  'bad-time': spec('invalid'),
  'bad-transfer-syntax': spec('invalid'),
  'bad-value': spec('invalid'),
  'bad-viewport': spec('invalid'),
  'bad-window': spec('invalid'),
  'bad-windowCenter': spec('invalid'),
  'bad-windowWidth': spec('invalid'),
  'invalid-object-key': spec('invalid'),
  'invalid-object-key-prefix': spec('invalid'),
  'invalid-uid': spec('invalid'),
  'no-keys': spec('invalid'),
  'one-frame': spec('invalid'),
  'repeated-parameter': spec('invalid'),
  'too-many-keys': spec('invalid'),
  'too-many-parameters': spec('invalid'),
  'too-many-uids': spec('invalid'),
  'too-many-values': spec('invalid'),
  'unknown-attribute': spec('invalid'),
  'value-too-long': spec('invalid'),
} as const satisfies Record<string, ReasonSpec>;

export type Reason = keyof typeof REASONS;
/** The reasons of one kind: `invalid('no-such-frame')` does not compile. */
export type ReasonOf<K extends ErrorKind> = { [R in Reason]: (typeof REASONS)[R]['kind'] extends K ? R : never }[Reason];

export const reasonSpec = (reason: Reason): ReasonSpec => REASONS[reason];

export interface TresorErrorOptions {
  cause?: unknown;
  /** When a retry may succeed (HTTP Retry-After, RFC 9110 §10.2.3), e.g. the end of a lockout. */
  retryAfterSeconds?: number;
  /**
   * A refusal disguised as not-found (rule 3: existence does not leak): the caller sees
   * exactly what an absent thing gives, the audit trail records a denial.
   */
  hidden?: boolean;
}

export class TresorError extends Error {
  readonly kind: ErrorKind;
  /** Machine-readable reason, e.g. 'sop-instance-conflict'; safe to log and to return. */
  readonly reason: Reason;
  readonly retryAfterSeconds?: number;
  readonly hidden: boolean;

  constructor(reason: Reason, message?: string, options: TresorErrorOptions = {}) {
    super(message ?? reason, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TresorError';
    this.kind = REASONS[reason].kind;
    this.reason = reason;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
    this.hidden = options.hidden ?? false;
  }

  /** Whether the audit trail records this as a denial rather than a failure. */
  get denied(): boolean {
    return this.kind === 'forbidden' || this.hidden;
  }
}

export const notFound = (reason: ReasonOf<'not-found'> = 'not-found', message?: string, options?: TresorErrorOptions) =>
  new TresorError(reason, message, options);
export const forbidden = (reason: ReasonOf<'forbidden'> = 'forbidden', message?: string) => new TresorError(reason, message);
export const invalid = (reason: ReasonOf<'invalid'>, message?: string) => new TresorError(reason, message);
export const conflict = (reason: ReasonOf<'conflict'>, message?: string) => new TresorError(reason, message);
export const unavailable = (reason: ReasonOf<'unavailable'>, message?: string, cause?: unknown) => new TresorError(reason, message, { cause });
export const tooLarge = (reason: ReasonOf<'too-large'>, message?: string) => new TresorError(reason, message);
export const unauthenticated = (reason: ReasonOf<'unauthenticated'> = 'unauthenticated', message?: string, options?: TresorErrorOptions) =>
  new TresorError(reason, message, options);

export const isTresorError = (e: unknown): e is TresorError => e instanceof TresorError;

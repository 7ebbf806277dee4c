// The key that authenticates the audit trail (issue 14 item 3), behind a port so the
// core never sees where it lives: derived from TRESOR_MASTER_KEY_FILE, or a key file
// in the data directory (pki/audit-key.ts). The database never holds it, so whoever can
// only write the database cannot compute a valid row MAC or checkpoint MAC.

export interface AuditKey {
  /** HMAC-SHA256 (lowercase hex) of `data`, domain-separated by `purpose`. */
  mac(purpose: 'row' | 'checkpoint', data: string): string;
}

/** Where signed checkpoints are kept, outside the database: append-only lines. */
export interface AuditCheckpointStore {
  /** Appends one line durably (fsync before resolving). */
  append(line: string): Promise<void>;
  /** Every line written so far, oldest first ([] when there is none). */
  readAll(): Promise<string[]>;
  /** Where it is, for messages ("<data>/audit-checkpoints.jsonl"). */
  readonly location: string;
}

// Append-only, hash-chained audit trail (ARCHITECTURE.md: audit). Each row carries
// the hash of the previous row and a MAC of its own hash under a key the database does
// not hold (ports/audit-key.ts); signed checkpoints of the head are kept outside the
// database (audit-checkpoint.ts). `verify` recomputes the chain, the MACs and the
// checkpoints and names the first check that fails (issue 14 item 3; threat model in
// the README's security section). Details never carry patient names or IDs: callers
// pass UIDs, principal names, reasons and counts only.

import { createHash } from 'node:crypto';
import { formatCheckpoint, parseCheckpoint, sameMac, signCheckpoint, type AuditCheckpoint } from './audit-checkpoint.js';
import { isTresorError } from './errors.js';
import type { AuditCheckpointStore, AuditKey } from './ports/audit-key.js';
import type { Principal } from './principal.js';

export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditEvent {
  action: string; // e.g. 'login', 'association', 'store', 'query', 'retrieve', 'delete', 'admin.user.create'
  outcome: AuditOutcome;
  principal?: Pick<Principal, 'kind' | 'id' | 'name'> | null;
  source?: string;
  studyUids?: readonly string[];
  details?: Record<string, unknown>;
}

export interface AuditRow {
  id: number;
  at: string; // ISO 8601
  principalKind: string;
  principalId: number | null;
  principalName: string | null;
  source: string | null;
  action: string;
  outcome: AuditOutcome;
  studyUids: string[];
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
  /** HMAC of `hash` under the audit key; null on legacy rows (written before migration 005) and without a key. */
  mac: string | null;
}

export interface AuditFilter {
  from?: string;
  to?: string;
  principal?: string;
  studyUid?: string;
  action?: string;
  outcome?: AuditOutcome;
  limit?: number;
  afterId?: number;
}

/** Storage for audit rows (implemented in db/audit.repo.ts). */
export interface AuditRepo {
  /** Appends under a lock so the chain is linear even with several writers and processes. */
  append(make: (prevHash: string) => Omit<AuditRow, 'id'>): Promise<AuditRow>;
  list(filter: AuditFilter): Promise<AuditRow[]>;
  /** Every row in id order, in pages (for verification). */
  scan(afterId: number, limit: number): Promise<AuditRow[]>;
  /** The newest row and the number of rows up to it; null when the trail is empty. */
  head(): Promise<{ seq: number; hash: string; count: number } | null>;
  /** Rows with id up to this were written before rows carried a MAC (migration 005). */
  legacyThrough(): Promise<number>;
}

export const GENESIS_HASH = '0'.repeat(64);

/** Canonical JSON: keys sorted, so the hash does not depend on key order from the database. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

export function hashRow(r: Omit<AuditRow, 'id' | 'hash' | 'mac'>): string {
  const body = canonicalJson({
    at: r.at,
    principalKind: r.principalKind,
    principalId: r.principalId,
    principalName: r.principalName,
    source: r.source,
    action: r.action,
    outcome: r.outcome,
    studyUids: r.studyUids,
    details: r.details,
    prevHash: r.prevHash,
  });
  return createHash('sha256').update(body).digest('hex');
}

/** Which check failed (README, security: the audit trail's threat model). */
export type VerifyFailure =
  | 'previous-hash-mismatch' // hash chain broken at brokenAt (a row removed or reordered)
  | 'row-hash-mismatch' // a row's content does not match its hash (edited in place)
  | 'mac-mismatch' // the hash is consistent but not authenticated by the key (re-chained rows, forged row)
  | 'truncated' // a checkpoint names a head the database no longer has (rows deleted from the end)
  | 'checkpoint-mac-invalid' // a line of the checkpoint file is not one this key signed
  | 'legacy-boundary-moved'; // the database's legacy boundary differs from the checkpoints'

export interface VerifyInfo {
  /** Rows verified (all rows when ok; those before the failure otherwise). */
  count: number;
  /** Rows written before migration 005, verified by the chain only. */
  legacy: number;
  /** False when no audit key was available: MACs were not checked. */
  macChecked: boolean;
  /** Valid checkpoints checked against the database. */
  checkpoints: number;
  /** The newest checkpoint: rows after it are protected by chain and MAC only. */
  lastCheckpoint?: { seq: number; count: number; at: string };
}

export type VerifyResult =
  | ({ ok: true } & VerifyInfo)
  | ({ ok: false; brokenAt: number; reason: VerifyFailure; message: string } & VerifyInfo);

export interface AuditLog {
  record(event: AuditEvent): Promise<void>;
  /**
   * Records after the operation already succeeded: a failed write cannot undo it, so it
   * is reported to the operator (`onLost`, action and outcome only: no PHI) instead of
   * turning the success into an error. Never throws.
   */
  recordAfter(event: AuditEvent): Promise<void>;
  list(filter: AuditFilter): Promise<AuditRow[]>;
  verify(): Promise<VerifyResult>;
  /**
   * Writes a signed checkpoint of the current head (after checking the rows since the
   * previous one), when there is a key, a checkpoint store and a new head. Returns it, or null.
   */
  checkpoint(): Promise<AuditCheckpoint | null>;
  /** Stops the checkpoint timer and writes a last checkpoint (shutdown). */
  close(): Promise<void>;
}

export interface AuditLogOptions {
  onLost?: (event: Pick<AuditEvent, 'action' | 'outcome'> & { via?: unknown }, err: unknown) => void;
  /** The audit key; without it rows carry no MAC and verify cannot check MACs. */
  key?: AuditKey;
  /** Where signed checkpoints go (with `key`). */
  checkpoints?: AuditCheckpointStore;
  /** A checkpoint after this many rows written by this process (default 1000)… */
  checkpointEveryRows?: number;
  /** …and every this many ms when the head moved (default 10 min; 0: no timer). */
  checkpointEveryMs?: number;
  /** A checkpoint was written (to log it as one line for a syslog sink; no PHI in it). */
  onCheckpoint?: (cp: AuditCheckpoint) => void;
  /** A checkpoint could not be written, or the rows since the last one did not verify. */
  onCheckpointError?: (err: unknown) => void;
}

/** The door an operation came through; in every row's details as `via`. */
export type Via = 'dicomweb' | 'dimse' | 'admin' | 'cli' | 'console';

/** What a core operation needs to audit itself: the door, and the door's detail (UIDs, counts, contexts; never patient data). */
export interface AuditDoor {
  via: Via;
  source?: string;
  details?: Record<string, unknown>;
}

/** What the work being audited adds to its row while it runs. */
export interface AuditNote {
  studyUids: Set<string>;
  details: Record<string, unknown>;
  /** Overrides 'success' when the work answered without throwing (e.g. 406, sub-operations failed). */
  outcome?: AuditOutcome;
}

/** At most this many study UIDs per row; the count is always exact in details. */
export const MAX_AUDITED_UIDS = 200;

/** Outcome and reason of a thrown error: refusals by the authorization point are denials. */
export function outcomeOf(e: unknown): { outcome: AuditOutcome; reason: string } {
  const denied = isTresorError(e) && (e.kind === 'forbidden' || e.denied);
  return { outcome: denied ? 'denied' : 'failure', reason: isTresorError(e) ? e.reason : 'internal' };
}

/**
 * Runs `fn` and writes exactly one row for it: success (or the outcome `fn` noted) when
 * it returns, failure/denied with the error's reason when it throws. On the failure
 * path a failed audit write is reported, never thrown: the caller's error matters more.
 * On the success path `strict` decides: true makes a failed write fail the operation
 * (no audit, no access), false reports it and keeps the result.
 */
export async function auditedRun<T>(
  audit: Pick<AuditLog, 'record' | 'recordAfter'>,
  base: Omit<AuditEvent, 'outcome'>,
  fn: (note: AuditNote) => Promise<T>,
  opts: { strict?: boolean } = {},
): Promise<T> {
  const note: AuditNote = { studyUids: new Set(base.studyUids ?? []), details: {} };
  const event = (outcome: AuditOutcome, extra: Record<string, unknown>): AuditEvent => ({
    ...base,
    outcome,
    studyUids: [...note.studyUids].slice(0, MAX_AUDITED_UIDS),
    details: { ...base.details, ...note.details, ...extra },
  });
  let result: T;
  try {
    result = await fn(note);
  } catch (e) {
    const { outcome, reason } = outcomeOf(e);
    await audit.recordAfter(event(outcome, { reason }));
    throw e;
  }
  const done = event(note.outcome ?? 'success', {});
  if (opts.strict) await audit.record(done);
  else await audit.recordAfter(done);
  return result;
}

export function createAuditLog(repo: AuditRepo, now: () => Date = () => new Date(), opts: AuditLogOptions = {}): AuditLog {
  const key = opts.key;
  const everyRows = opts.checkpointEveryRows ?? 1000;
  let rowsSinceCheckpoint = 0;
  let lastWritten: AuditCheckpoint | null | undefined; // undefined: not read from the store yet
  let pending: Promise<AuditCheckpoint | null> = Promise.resolve(null);

  const rowMac = (hash: string): string | null => (key ? key.mac('row', hash) : null);

  async function lastCheckpoint(): Promise<AuditCheckpoint | null> {
    if (lastWritten !== undefined) return lastWritten;
    if (!key || !opts.checkpoints) return (lastWritten = null);
    const lines = await opts.checkpoints.readAll();
    let last: AuditCheckpoint | null = null;
    for (const line of lines) {
      const cp = parseCheckpoint(key, line);
      if (cp && (!last || cp.seq >= last.seq)) last = cp;
    }
    return (lastWritten = last);
  }

  /** Checks chain and MACs of the rows after `from` (exclusive) up to `seq`; throws naming the row. */
  async function checkSince(from: AuditCheckpoint | null, upTo: number, legacyThrough: number): Promise<void> {
    let prev = from?.hash ?? GENESIS_HASH;
    let after = from?.seq ?? 0;
    if (!from) return; // the first checkpoint: verify() covers the whole history
    for (;;) {
      const page = await repo.scan(after, 1000);
      for (const r of page) {
        if (r.id > upTo) return;
        if (r.prevHash !== prev || hashRow(r) !== r.hash || (r.id > legacyThrough && key && !sameMac(key.mac('row', r.hash), r.mac))) {
          throw new Error(`audit row ${r.id} does not verify since the last checkpoint (seq ${from.seq}); not signing a checkpoint over it: run tresor audit verify`);
        }
        prev = r.hash;
        after = r.id;
      }
      if (page.length === 0) return;
    }
  }

  async function writeCheckpoint(): Promise<AuditCheckpoint | null> {
    if (!key || !opts.checkpoints) return null;
    const head = await repo.head();
    if (!head) return null;
    const last = await lastCheckpoint();
    if (last && last.seq === head.seq && last.hash === head.hash) return null;
    const legacyThrough = await repo.legacyThrough();
    await checkSince(last, head.seq, legacyThrough);
    const cp = signCheckpoint(key, { v: 1, seq: head.seq, hash: head.hash, count: head.count, at: now().toISOString(), legacyThrough });
    await opts.checkpoints.append(formatCheckpoint(cp));
    lastWritten = cp;
    opts.onCheckpoint?.(cp);
    return cp;
  }

  /** Checkpoints run one at a time; an error is reported, never thrown into an operation. */
  const checkpoint = (): Promise<AuditCheckpoint | null> => {
    rowsSinceCheckpoint = 0;
    pending = pending.then(writeCheckpoint, writeCheckpoint).catch((err) => {
      opts.onCheckpointError?.(err);
      return null;
    });
    return pending;
  };

  const timer =
    key && opts.checkpoints && (opts.checkpointEveryMs ?? 600_000) > 0
      ? setInterval(() => void checkpoint(), opts.checkpointEveryMs ?? 600_000)
      : undefined;
  timer?.unref();

  const log: AuditLog = {
    async recordAfter(e) {
      try {
        await log.record(e);
      } catch (err) {
        opts.onLost?.({ action: e.action, outcome: e.outcome, via: e.details?.via }, err);
      }
    },
    async record(e) {
      await repo.append((prevHash) => {
        const row = {
          // Millisecond ISO string: survives the round trip through timestamptz unchanged.
          at: now().toISOString(),
          principalKind: e.principal?.kind ?? 'anonymous',
          principalId: e.principal?.id ?? null,
          principalName: e.principal?.name ?? null,
          source: e.source ?? null,
          action: e.action,
          outcome: e.outcome,
          studyUids: [...(e.studyUids ?? [])],
          details: JSON.parse(JSON.stringify(e.details ?? {})) as Record<string, unknown>,
          prevHash,
        };
        // The MAC is computed here, with the hash, and binds it (and through prevHash the
        // whole chain before it) to a key the database does not hold.
        const hash = hashRow(row);
        return { ...row, hash, mac: rowMac(hash) };
      });
      if (key && opts.checkpoints && ++rowsSinceCheckpoint >= everyRows) void checkpoint();
    },
    list: (filter) => repo.list(filter),
    verify: () => verifyTrail(repo, key, opts.checkpoints),
    checkpoint,
    async close() {
      if (timer) clearInterval(timer);
      await checkpoint();
    },
  };
  return log;
}

/** Recomputes chain, MACs and checkpoints; the first failing check is named. */
async function verifyTrail(repo: AuditRepo, key: AuditKey | undefined, store: AuditCheckpointStore | undefined): Promise<VerifyResult> {
  const legacyThrough = await repo.legacyThrough();
  const info: VerifyInfo = { count: 0, legacy: 0, macChecked: !!key, checkpoints: 0 };
  const fail = (brokenAt: number, reason: VerifyFailure, message: string): VerifyResult => ({ ok: false, brokenAt, reason, message, ...info });

  const checkpoints: AuditCheckpoint[] = [];
  if (key && store) {
    const lines = await store.readAll();
    for (let i = 0; i < lines.length; i++) {
      const cp = parseCheckpoint(key, lines[i]);
      if (!cp) {
        return fail(i + 1, 'checkpoint-mac-invalid', `line ${i + 1} of ${store.location} is not a checkpoint signed with this audit key: the checkpoint file was altered (or the key changed); keep the file as evidence`);
      }
      checkpoints.push(cp);
    }
    checkpoints.sort((a, b) => a.seq - b.seq);
    info.checkpoints = checkpoints.length;
    const last = checkpoints.at(-1);
    if (last) info.lastCheckpoint = { seq: last.seq, count: last.count, at: last.at };
    const moved = checkpoints.find((c) => c.legacyThrough !== legacyThrough);
    if (moved) {
      return fail(moved.seq, 'legacy-boundary-moved', `the database says rows up to ${legacyThrough} are legacy (no MAC), the checkpoint of seq ${moved.seq} says ${moved.legacyThrough}: audit_meta was altered`);
    }
  }

  let next = 0; // index of the next checkpoint to meet
  let prev = GENESIS_HASH;
  let after = 0;
  for (;;) {
    const page = await repo.scan(after, 1000);
    for (const r of page) {
      // A checkpoint whose seq was skipped over: that row is gone.
      if (next < checkpoints.length && checkpoints[next].seq < r.id) {
        const cp = checkpoints[next];
        return fail(cp.seq, 'truncated', `checkpoint of ${cp.at} names row ${cp.seq} (count ${cp.count}), which the database no longer has: rows were deleted`);
      }
      if (r.prevHash !== prev) return fail(r.id, 'previous-hash-mismatch', `hash chain broken at row ${r.id}: its predecessor was removed or changed`);
      if (hashRow(r) !== r.hash) return fail(r.id, 'row-hash-mismatch', `row ${r.id} was changed after it was written (its content does not match its hash)`);
      if (r.id <= legacyThrough) info.legacy++;
      else if (key && !sameMac(key.mac('row', r.hash), r.mac)) {
        return fail(r.id, 'mac-mismatch', `row ${r.id} is not authenticated by the audit key: rows were re-chained or forged from here on`);
      }
      info.count++;
      if (next < checkpoints.length && checkpoints[next].seq === r.id) {
        const cp = checkpoints[next];
        if (cp.hash !== r.hash || cp.count !== info.count) {
          return fail(r.id, 'truncated', `checkpoint of ${cp.at} says row ${cp.seq} has hash ${cp.hash.slice(0, 12)}… and ${cp.count} rows up to it; the database has ${r.hash.slice(0, 12)}… and ${info.count}: rows were deleted or replaced`);
        }
        while (next < checkpoints.length && checkpoints[next].seq === r.id) next++;
      }
      prev = r.hash;
      after = r.id;
    }
    if (page.length === 0) break;
  }
  if (next < checkpoints.length) {
    const cp = checkpoints[checkpoints.length - 1];
    return fail(cp.seq, 'truncated', `rows missing after the last checkpoint: it says the chain had ${cp.count} rows up to row ${cp.seq} on ${cp.at}, the database has ${info.count} rows ending at row ${after}`);
  }
  return { ok: true, ...info };
}

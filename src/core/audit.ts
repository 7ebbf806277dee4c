// Append-only, hash-chained audit trail (ARCHITECTURE.md: audit). Each row carries
// the hash of the previous row; `verify` recomputes the chain and names the first
// row that does not fit. Details never carry patient names or IDs: callers pass
// UIDs, principal names, reasons and counts only.

import { createHash } from 'node:crypto';
import { isTresorError } from './errors.js';
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
}

export const GENESIS_HASH = '0'.repeat(64);

/** Canonical JSON: keys sorted, so the hash does not depend on key order from the database. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

export function hashRow(r: Omit<AuditRow, 'id' | 'hash'>): string {
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

export type VerifyResult = { ok: true; count: number } | { ok: false; count: number; brokenAt: number; reason: string };

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

export function createAuditLog(
  repo: AuditRepo,
  now: () => Date = () => new Date(),
  opts: { onLost?: (event: Pick<AuditEvent, 'action' | 'outcome'> & { via?: unknown }, err: unknown) => void } = {},
): AuditLog {
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
        return { ...row, hash: hashRow(row) };
      });
    },
    list: (filter) => repo.list(filter),
    async verify() {
      let prev = GENESIS_HASH;
      let count = 0;
      let after = 0;
      for (;;) {
        const page = await repo.scan(after, 1000);
        if (page.length === 0) return { ok: true, count };
        for (const r of page) {
          if (r.prevHash !== prev) return { ok: false, count, brokenAt: r.id, reason: 'previous-hash-mismatch' };
          if (hashRow(r) !== r.hash) return { ok: false, count, brokenAt: r.id, reason: 'row-hash-mismatch' };
          prev = r.hash;
          count++;
          after = r.id;
        }
      }
    },
  };
  return log;
}

// Instrumentation at the ports and around the core services (never inside them):
// deps.ts wraps what it builds with these when metrics are on. The wrappers keep
// every method's contract (same results, same errors) and only observe.
//
// Bytes stored per door: from each ingest result (IngestResult.storedBytes). Not an
// AsyncLocalStorage from the ingest wrapper down to the blob store's put(), as before:
// on Node 20 one AsyncLocalStorage turns on promise hooks for the whole process, and
// every promise anywhere then paid for them (issue 13: ~3% of an ingest's main-thread
// time in promiseInitHook and its kin).

import type { Readable } from 'node:stream';
import type { AuditEvent, AuditLog } from '../core/audit.js';
import { outcomeOf } from '../core/audit.js';
import { REASONS } from '../core/errors.js';
import type { LockoutRepo } from '../core/identity/lockout.js';
import type { IngestResult, IngestService, IngestTransfer } from '../core/ingest.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { QueryService } from '../core/query.js';
import { doorLabel, reasonLabel, type Door, type Metrics } from './registry.js';

function kindOf(reason: string): string {
  return Object.hasOwn(REASONS, reason) ? REASONS[reason as keyof typeof REASONS].kind : reason === 'internal' ? 'internal' : 'other';
}

/** Counts from the audit trail's own events: one vocabulary, both doors, nothing written twice. */
export function observeAuditEvent(m: Metrics, e: AuditEvent): void {
  const door = doorLabel(e.details?.via);
  if (e.action === 'retrieve' && (door === 'dimse' || door === 'dicomweb')) m.retrievals.inc({ door, outcome: e.outcome });
  if (e.action === 'query' && (door === 'dimse' || door === 'dicomweb')) m.queries.inc({ door, outcome: e.outcome });
  if (e.action === 'login') m.logins.inc({ outcome: e.outcome });
  if (e.outcome !== 'success') {
    const reason = reasonLabel(e.details?.reason);
    m.errors.inc({ door, kind: kindOf(reason), reason });
  }
}

export function observedAudit(audit: AuditLog, m: Metrics): AuditLog {
  return {
    ...audit,
    record: (e) => {
      observeAuditEvent(m, e);
      return audit.record(e);
    },
    recordAfter: (e) => {
      observeAuditEvent(m, e);
      return audit.recordAfter(e);
    },
  };
}

async function timedStore(m: Metrics, door: Door, fn: () => Promise<IngestResult>): Promise<IngestResult> {
  const end = m.storeSeconds.startTimer({ door });
  try {
    const r = await fn();
    m.stores.inc({ door, outcome: 'success' });
    if (r.storedBytes) m.storedBytes.inc({ door }, r.storedBytes);
    return r;
  } catch (e) {
    m.stores.inc({ door, outcome: outcomeOf(e).outcome });
    throw e;
  } finally {
    end();
  }
}

export function instrumentIngest(s: IngestService, m: Metrics): IngestService {
  return {
    ingestStream: (p, body, opts) => timedStore(m, opts.via, () => s.ingestStream(p, body, opts)),
    ingestFile: (p, file, opts) => timedStore(m, opts.via, () => s.ingestFile(p, file, opts)),
    openTransfer(p, door) {
      const t = s.openTransfer(p, door);
      const via: Door = door.via === 'dimse' ? 'dimse' : 'dicomweb';
      const wrapped: IngestTransfer = {
        ingestStream: (body, opts) => timedStore(m, via, () => t.ingestStream(body, opts)),
        ingestFile: (file, opts) => timedStore(m, via, () => t.ingestFile(file, opts)),
        lookAhead: (head) => t.lookAhead(head),
        refused: (reason) => {
          m.stores.inc({ door: via, outcome: 'failure' });
          t.refused(reason);
        },
        end: (details) => t.end(details),
      };
      return wrapped;
    },
  };
}

export function instrumentQuery(q: QueryService, m: Metrics): QueryService {
  const door = (via: string): Door => (via === 'dimse' ? 'dimse' : 'dicomweb');
  return {
    find: (p, req) => q.find(p, req),
    async search(p, req, d) {
      const end = m.querySeconds.startTimer({ door: door(d.via) });
      try {
        return await q.search(p, req, d);
      } finally {
        end();
      }
    },
    async *searchPaged(p, req, d, pageSize) {
      const end = m.querySeconds.startTimer({ door: door(d.via) });
      try {
        yield* q.searchPaged(p, req, d, pageSize);
      } finally {
        end();
      }
    },
  };
}

async function timed<T>(m: Metrics, operation: string, fn: () => Promise<T>): Promise<T> {
  const end = m.blobSeconds.startTimer({ operation });
  try {
    const r = await fn();
    end({ outcome: 'success' });
    return r;
  } catch (e) {
    end({ outcome: 'failure' });
    throw e;
  }
}

export function instrumentBlobStore(b: BlobStore, m: Metrics): BlobStore {
  const wrapped: BlobStore = {
    put: (key: string, body: Readable) => timed(m, 'put', () => b.put(key, body)),
    get: (key, opts) => timed(m, 'get', () => b.get(key, opts)),
    stat: (key) => timed(m, 'stat', () => b.stat(key)),
    delete: (key) => timed(m, 'delete', () => b.delete(key)),
    ping: () => timed(m, 'ping', () => b.ping()),
    list: (prefix) => b.list(prefix),
    close: () => b.close(),
  };
  // Optional methods are forwarded only when the store has them: the core tests for their
  // presence (a missing adopt() here once made every spool file copied and fsynced twice).
  const adopt = b.adopt?.bind(b);
  if (adopt) wrapped.adopt = (key, file, info, opts) => timed(m, 'adopt', () => adopt(key, file, info, opts));
  return wrapped;
}

/** A lock placed (lockedUntil moved forward) is a lockout; the key says account or address. */
export function instrumentLockouts(r: LockoutRepo, m: Metrics): LockoutRepo {
  return {
    get: (keys) => r.get(keys),
    prune: (before) => r.prune(before),
    async update(key, fn) {
      let before: Date | null = null;
      const after = await r.update(key, (s) => {
        before = s?.lockedUntil ?? null;
        return fn(s);
      });
      const was = before as Date | null;
      if (after?.lockedUntil && (!was || after.lockedUntil.getTime() > was.getTime())) {
        m.lockouts.inc({ scope: key.startsWith('addr:') ? 'address' : 'account' });
      }
      return after;
    },
  };
}

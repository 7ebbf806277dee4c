import type { AuditFilter, AuditRepo, AuditRow } from '../core/audit.js';
import { GENESIS_HASH } from '../core/audit.js';
import { semaphore } from '../lib/semaphore.js';
import { isEmbedded, type Db } from './knex.js';

// One advisory-lock key for the audit chain on PostgreSQL: appends are serialised across
// connections and server processes, so every row links to exactly one predecessor. (The
// embedded database has one process and one connection: its appends are queued here.)
const AUDIT_LOCK = 0x7e50a0d1;

/**
 * The row insert as a named statement (knex.ts prepared()), parsed once per connection:
 * its text is always the same (columns() writes every column, knex orders them). It
 * returns named columns, not *: a column added by a later migration (another node may run
 * it while this one holds the statement) must not change the statement's result type.
 */
const AUDIT_INSERT = 'tresor_audit_append';
const RETURNED = ['id', 'at', 'principal_kind', 'principal_id', 'principal_name', 'source', 'action', 'outcome', 'study_uids', 'details', 'prev_hash', 'hash', 'mac'];

const toRow = (r: any): AuditRow => ({
  id: Number(r.id),
  at: new Date(r.at).toISOString(),
  principalKind: r.principal_kind,
  principalId: r.principal_id === null ? null : Number(r.principal_id),
  principalName: r.principal_name,
  source: r.source,
  action: r.action,
  outcome: r.outcome,
  studyUids: r.study_uids ?? [],
  details: r.details ?? {},
  prevHash: r.prev_hash,
  hash: r.hash,
  mac: r.mac ?? null,
});

type Make = Parameters<AuditRepo['append']>[0];

const columns = (row: ReturnType<Make>) => ({
  at: row.at,
  principal_kind: row.principalKind,
  principal_id: row.principalId,
  principal_name: row.principalName,
  source: row.source,
  action: row.action,
  outcome: row.outcome,
  study_uids: row.studyUids,
  details: JSON.stringify(row.details),
  prev_hash: row.prevHash,
  hash: row.hash,
  mac: row.mac,
});

/**
 * The embedded database: one process (the data directory's lock, lib/data-dir-lock.ts)
 * and one connection, so the chain's order is this process's order. Appends are queued
 * here, the head's hash is kept from the last append, and each append is ONE autocommit
 * INSERT instead of the five statements of a transaction (BEGIN, lock, head, insert,
 * COMMIT): on PGlite every statement is ~0.4 ms of this thread's CPU, and an association
 * writes at least one row (issue 13: C-ECHO and C-FIND latency). The head is read from
 * the table when none is known — at the first append, and after a failed one. One
 * appender per database, however many repos are made of it.
 */
const embeddedAppenders = new WeakMap<Db, (make: Make) => Promise<AuditRow>>();

function embeddedAppender(db: Db): (make: Make) => Promise<AuditRow> {
  let appender = embeddedAppenders.get(db);
  if (!appender) embeddedAppenders.set(db, (appender = newEmbeddedAppender(db)));
  return appender;
}

function newEmbeddedAppender(db: Db): (make: Make) => Promise<AuditRow> {
  // One at a time, in call order; with none running, the INSERT is issued at once, not a
  // turn of the event loop later: it takes its place on the one connection before any
  // statement asked for after this call (a reader that looks for the row it just caused
  // sees it, as with a transaction).
  const oneAtATime = semaphore(1);
  let head: string | undefined;
  return (make) =>
    oneAtATime(async () => {
      try {
        head ??= ((await db('audit_events').select('hash').orderBy('id', 'desc').first()) as { hash: string } | undefined)?.hash ?? GENESIS_HASH;
        const [inserted] = await db('audit_events').insert(columns(make(head))).returning(RETURNED).options({ name: AUDIT_INSERT });
        const row = toRow(inserted);
        head = row.hash;
        return row;
      } catch (e) {
        head = undefined;
        throw e;
      }
    });
}

interface PgKnexClient {
  acquireConnection(): Promise<unknown>;
  releaseConnection(conn: unknown): Promise<unknown>;
  query(conn: unknown, obj: { sql: string; bindings: unknown[]; method: 'raw' }): Promise<{ response: unknown }>;
}

/**
 * PostgreSQL: the same transaction in three round trips instead of five (issue 13 item 2:
 * every accepted association waits for this row before its A-ASSOCIATE-AC). BEGIN, the
 * lock and the read of the head go as one simple-protocol message of three statements:
 * they still run one after the other, and in READ COMMITTED each statement takes its own
 * snapshot, so the head is read after the lock is held and sees every row committed
 * before it (one statement doing both would read with a snapshot from before the wait).
 * The insert carries its values as bind parameters (never spliced into SQL), so it is a
 * message of its own, then COMMIT. Nothing here has parameters but the insert.
 */
async function appendOnServer(db: Db, make: Make): Promise<AuditRow> {
  const client = db.client as unknown as PgKnexClient;
  const conn = await client.acquireConnection();
  try {
    const head = await client.query(conn, { sql: `BEGIN; SELECT pg_advisory_xact_lock(${AUDIT_LOCK}); SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`, bindings: [], method: 'raw' });
    const results = head.response as { rows: { hash: string }[] }[];
    const row = make(results[2].rows[0]?.hash ?? GENESIS_HASH);
    const [inserted] = await db('audit_events').connection(conn).insert(columns(row)).returning(RETURNED).options({ name: AUDIT_INSERT });
    await client.query(conn, { sql: 'COMMIT', bindings: [], method: 'raw' });
    return toRow(inserted);
  } catch (e) {
    // Whatever failed, the connection goes back to the pool outside any transaction (a
    // dead connection fails here too and is discarded by the pool's validation).
    await client.query(conn, { sql: 'ROLLBACK', bindings: [], method: 'raw' }).catch(() => undefined);
    throw e;
  } finally {
    await client.releaseConnection(conn);
  }
}

export function createAuditRepo(db: Db): AuditRepo {
  return {
    append: isEmbedded(db) ? embeddedAppender(db) : (make) => appendOnServer(db, make),
    async list(f: AuditFilter) {
      const q = db('audit_events').orderBy('id', 'desc').limit(Math.min(f.limit ?? 100, 1000));
      if (f.from) q.where('at', '>=', f.from);
      if (f.to) q.where('at', '<', f.to);
      if (f.principal) q.where('principal_name', f.principal);
      if (f.action) q.where('action', f.action);
      if (f.outcome) q.where('outcome', f.outcome);
      if (f.studyUid) q.whereRaw('? = ANY(study_uids)', [f.studyUid]);
      if (f.afterId) q.where('id', '<', f.afterId);
      return (await q).map(toRow);
    },
    async head() {
      const r = await db('audit_events').select('id', 'hash').orderBy('id', 'desc').first();
      if (!r) return null;
      const [{ n }] = await db('audit_events').where('id', '<=', r.id).count<{ n: number | string }[]>({ n: '*' });
      return { seq: Number(r.id), hash: r.hash, count: Number(n) };
    },
    async legacyThrough() {
      const r = await db('audit_meta').select('legacy_through').first();
      return r ? Number(r.legacy_through) : 0;
    },
    async scan(afterId, limit) {
      return (await db('audit_events').where('id', '>', afterId).orderBy('id').limit(limit)).map(toRow);
    },
  };
}

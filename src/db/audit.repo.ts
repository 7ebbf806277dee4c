import type { AuditFilter, AuditRepo, AuditRow } from '../core/audit.js';
import { GENESIS_HASH } from '../core/audit.js';
import type { Db } from './knex.js';

// One advisory-lock key for the audit chain: appends are serialised across
// connections and server processes, so every row links to exactly one predecessor.
const AUDIT_LOCK = 0x7e50a0d1;

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

export function createAuditRepo(db: Db): AuditRepo {
  return {
    async append(make) {
      return db.transaction(async (trx) => {
        await trx.raw('SELECT pg_advisory_xact_lock(?)', [AUDIT_LOCK]);
        const last = await trx('audit_events').select('hash').orderBy('id', 'desc').first();
        const row = make(last?.hash ?? GENESIS_HASH);
        const [inserted] = await trx('audit_events')
          .insert({
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
          })
          .returning('*');
        return toRow(inserted);
      });
    },
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

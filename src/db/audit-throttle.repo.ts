// The shared windows of the anonymous-refusal audit throttle (core/audit-throttle.ts) on
// the audit_throttle table: read FOR UPDATE and written in one transaction, so refusals
// on several nodes at once are all counted. Windows older than an hour are pruned now
// and then (a flood from sprayed addresses leaves no lasting rows).

import type { ThrottleWindowStore } from '../core/audit-throttle.js';
import type { Db } from './knex.js';

export function createAuditThrottleRepo(db: Db): ThrottleWindowStore {
  let calls = 0;
  return {
    async update(source, fn) {
      if (++calls % 1000 === 0) await db('audit_throttle').where('window_start', '<', new Date(Date.now() - 3600_000).toISOString()).delete();
      await db.transaction(async (trx) => {
        await trx('audit_throttle').insert({ source, window_start: new Date(0).toISOString(), count: 0, suppressed: 0 }).onConflict('source').ignore();
        const r = await trx('audit_throttle').where({ source }).forUpdate().first();
        const fresh = Number(r.count) === 0 && Number(r.suppressed) === 0;
        const next = fn(fresh ? null : { start: new Date(r.window_start), count: Number(r.count), suppressed: Number(r.suppressed) });
        await trx('audit_throttle').where({ source }).update({ window_start: next.start.toISOString(), count: next.count, suppressed: next.suppressed });
      });
    },
  };
}

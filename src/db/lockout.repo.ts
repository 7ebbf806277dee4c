// LockoutRepo (core/identity/lockout.ts) on the `lockouts` table. Each update reads the
// row FOR UPDATE inside a transaction, so concurrent failures from several connections or
// server processes are all counted (no lost update lets an attacker slip past the limit).

import type { LockoutRepo, LockoutState } from '../core/identity/lockout.js';
import { affectedRows } from './identity.repo.js';
import type { Db } from './knex.js';

const toState = (r: any): LockoutState => ({
  failures: Number(r.failures),
  windowStart: new Date(r.window_start),
  lockCount: Number(r.lock_count),
  lockedUntil: r.locked_until ? new Date(r.locked_until) : null,
});

const fromState = (s: LockoutState) => ({
  failures: s.failures,
  window_start: s.windowStart.toISOString(),
  lock_count: s.lockCount,
  locked_until: s.lockedUntil ? s.lockedUntil.toISOString() : null,
});

export function createLockoutRepo(db: Db): LockoutRepo {
  return {
    async get(keys) {
      const out = new Map<string, LockoutState>();
      if (keys.length === 0) return out;
      for (const r of await db('lockouts').whereIn('key', [...keys])) out.set(r.key, toState(r));
      return out;
    },
    async update(key, fn) {
      return db.transaction(async (trx) => {
        // Make sure the row exists so that FOR UPDATE has something to lock.
        await trx('lockouts').insert({ key, failures: 0 }).onConflict('key').ignore();
        const row = await trx('lockouts').where({ key }).forUpdate().first();
        const fresh = row.failures === 0 && row.lock_count === 0 && row.locked_until === null;
        const next = fn(fresh ? null : toState(row));
        if (next === null) {
          await trx('lockouts').where({ key }).delete();
          return null;
        }
        await trx('lockouts').where({ key }).update(fromState(next));
        return next;
      });
    },
    async prune(before) {
      const cutoff = before.toISOString();
      return affectedRows(
        await db('lockouts')
          .where('window_start', '<', cutoff)
          .andWhere((q) => q.whereNull('locked_until').orWhere('locked_until', '<', cutoff))
          .delete(),
      );
    },
  };
}

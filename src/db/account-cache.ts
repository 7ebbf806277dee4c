// The embedded database's account reads, cached until an account changes (issue 13).
// Every authenticated request re-reads its account (core/identity/recheck.ts and auth.ts)
// and every certificate association reads its device: on the embedded database each was
// a statement on its one connection, run on the main thread (0.4-0.9 ms each; an echo
// association ran three statements, two of them these). A cached answer is served only
// while no transaction that changed an account table has committed since it was read
// (knex.ts accountChangesOf, migration 008): a revocation, a disabled account, a changed
// role, password or certificate still refuses the very next request, as before.
// On PostgreSQL (accountChangesOf undefined) every read goes to the database: other nodes
// change accounts too, and their notifications would arrive only later.

import { accountChangesOf, type Db } from './knex.js';

/** Enough for every account a clinic has; past it the cache starts over. */
const MAX_ENTRIES = 1000;

export type CachedRead = <T>(key: string, load: () => Promise<T>) => Promise<T>;

const caches = new WeakMap<Db, CachedRead>();

/** The cache of `db` (one per database, shared by every repository on it). */
export function accountReadCache(db: Db): CachedRead {
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = createCache(db)));
  return cache;
}

function createCache(db: Db): CachedRead {
  const changes = accountChangesOf(db);
  if (!changes) return (_key, load) => load();
  const entries = new Map<string, { generation: number; value: unknown }>();
  return async <T>(key: string, load: () => Promise<T>): Promise<T> => {
    const hit = entries.get(key);
    // A copy: callers own what they are given, and the cached rows must not change.
    if (hit && hit.generation === changes.generation) return structuredClone(hit.value) as T;
    // The generation as of before the read: a change that commits while the read is on
    // its way (its answer may predate the change) leaves the answer uncached.
    const generation = changes.generation;
    const value = await load();
    if (changes.generation === generation) {
      if (entries.size >= MAX_ENTRIES) entries.clear();
      entries.set(key, { generation, value: structuredClone(value) });
    }
    return value;
  };
}

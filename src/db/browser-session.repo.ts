// BrowserSessionRepo (core/identity/browser-sessions.ts) on the `browser_sessions` table.
// Keys are SHA-256 hashes of the cookie values; the values themselves never reach here.

import type { BrowserSessionRecord, BrowserSessionRepo } from '../core/identity/browser-sessions.js';
import { affectedRows } from './identity.repo.js';
import type { Db } from './knex.js';

const toRecord = (r: any): BrowserSessionRecord => ({
  idHash: r.id_hash,
  userId: Number(r.user_id),
  tokenGeneration: Number(r.token_generation),
  csrfToken: r.csrf_token,
  createdAt: new Date(r.created_at),
  lastSeenAt: new Date(r.last_seen_at),
  expiresAt: new Date(r.expires_at),
});

export function createBrowserSessionRepo(db: Db): BrowserSessionRepo {
  return {
    async insert(r) {
      await db('browser_sessions').insert({
        id_hash: r.idHash,
        user_id: r.userId,
        token_generation: r.tokenGeneration,
        csrf_token: r.csrfToken,
        created_at: r.createdAt.toISOString(),
        last_seen_at: r.lastSeenAt.toISOString(),
        expires_at: r.expiresAt.toISOString(),
      });
    },
    async find(idHash) {
      const row = await db('browser_sessions').where({ id_hash: idHash }).first();
      return row ? toRecord(row) : null;
    },
    async touch(idHash, at) {
      // Never backwards: two requests of one session may race.
      await db('browser_sessions').where({ id_hash: idHash }).where('last_seen_at', '<', at.toISOString()).update({ last_seen_at: at.toISOString() });
    },
    async delete(idHash) {
      return affectedRows(await db('browser_sessions').where({ id_hash: idHash }).delete()) > 0;
    },
    async prune(now, idleBefore) {
      return affectedRows(
        await db('browser_sessions').where('expires_at', '<=', now.toISOString()).orWhere('last_seen_at', '<=', idleBefore.toISOString()).delete(),
      );
    },
  };
}

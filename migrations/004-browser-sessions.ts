// Browser sessions of the console and the viewer (README "Browser sessions"): one row per
// login, keyed by the SHA-256 of the random session id the cookie carries, so a copy of
// the database (a backup, a read-only replica) gives nobody a usable cookie. The user's
// token generation at login is kept: a password change or reset ends every session, as
// it ends every bearer token. Rows go with their user (ON DELETE CASCADE).

import type { Knex } from 'knex';

export const name = '004-browser-sessions';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('browser_sessions', (t) => {
    t.text('id_hash').primary();
    t.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.integer('token_generation').notNullable();
    t.text('csrf_token').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('last_seen_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.index(['user_id']);
    t.index(['expires_at']);
    t.index(['last_seen_at']);
  });
  await knex.raw(`ALTER TABLE browser_sessions ADD CONSTRAINT browser_sessions_id_hash_check CHECK (id_hash ~ '^[0-9a-f]{64}$')`);
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}

// Issue 13: the embedded database's account reads are cached until an account changes.
// Every authenticated request re-reads its account (core/identity/recheck.ts, auth.ts),
// and every certificate association reads its device: on the embedded database each is
// a statement on the one connection, on the main thread. A statement-level trigger on
// every table those reads look at sends NOTIFY tresor_accounts when a transaction that
// changed one commits (PostgreSQL delivers a NOTIFY at commit, and not at all on
// rollback). PGlite delivers it in this process, before the COMMIT's call returns, so the
// cache (db/account-cache.ts) is emptied before anyone can act on the change.
// On PostgreSQL nobody listens (several nodes write, and delivery to another session is
// asynchronous); the reads there stay uncached. A NOTIFY nobody listens to costs an
// account write one queue entry; account writes are rare.
// The tables: users, devices, role_bindings, departments (a binding's name and disabled
// flag) and revoked_certificates (db/identity.repo.ts accountRead, certificateLogin).

import type { Knex } from 'knex';

export const name = '008-account-change-notify';

/** The channel the triggers notify; db/knex.ts listens on it (embedded database only). */
export const ACCOUNT_CHANNEL = 'tresor_accounts';

const ACCOUNT_TABLES = ['users', 'devices', 'role_bindings', 'departments', 'revoked_certificates'] as const;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`CREATE FUNCTION tresor_accounts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('${ACCOUNT_CHANNEL}', TG_TABLE_NAME);
      RETURN NULL;
    END $$`);
  for (const table of ACCOUNT_TABLES) {
    await knex.raw(`CREATE TRIGGER ${table}_accounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${table}
      FOR EACH STATEMENT EXECUTE FUNCTION tresor_accounts_changed()`);
  }
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}

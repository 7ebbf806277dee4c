// The only place a database connection is made (ARCHITECTURE.md rule 7: knex
// never leaves db/). PostgreSQL through `pg` when DATABASE_URL is set; otherwise
// PGlite (PostgreSQL compiled to WASM) in the data directory, through knex-pglite,
// so the embedded default needs no server and runs the very same SQL.

import fs from 'node:fs/promises';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';
import { migrations } from '../../migrations/index.js';

// PostgreSQL BIGINT (int8) and COUNT(*) arrive as strings by default; our ids and
// sizes stay far below 2^53, so parse them as numbers.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

export type Db = Knex;

export interface DbOptions {
  /** postgres:// URL; when absent, an embedded PGlite database. */
  url?: string;
  /** Directory for the embedded database; absent with no url → in memory (tests). */
  embeddedDir?: string;
}

export async function openDb(opts: DbOptions): Promise<Db> {
  if (opts.url) {
    return knexFactory({
      client: 'pg',
      connection: opts.url,
      pool: { min: 0, max: 10 },
      acquireConnectionTimeout: 10_000,
      // Knex would print its warnings (with stacks) to the console, between the JSON log
      // lines on stdout; every failure it warns about also reaches the caller as an error.
      log: { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined },
    });
  }
  if (opts.embeddedDir) await fs.mkdir(opts.embeddedDir, { recursive: true, mode: 0o700 });
  return knexFactory({
    client: ClientPgLite as unknown as typeof Knex.Client,
    dialect: 'postgres',
    connection: opts.embeddedDir ? { filename: path.resolve(opts.embeddedDir) } : {},
    useNullAsDefault: false,
  } as Knex.Config);
}

/** Runs every pending migration (forward-only), from the static list in migrations/. */
export async function migrate(db: Db): Promise<string[]> {
  const source: Knex.MigrationSource<(typeof migrations)[number]> = {
    getMigrations: async () => migrations,
    getMigrationName: (m) => m.name,
    getMigration: async (m) => m,
  };
  // Several nodes starting at once on one PostgreSQL: knex's migration lock lets one
  // migrate and makes the others fail with MigrationLocked; on an empty database they
  // may also race to create knex's own bookkeeping tables (unique violation 23505 on
  // pg_type, or 42P07 duplicate table). Either way they wait and try again, and then
  // find nothing left to do.
  for (let attempt = 0; ; attempt++) {
    try {
      const [, applied] = (await db.migrate.latest({ migrationSource: source })) as [number, string[]];
      return applied;
    } catch (e) {
      const err = e as Error & { code?: string };
      const race = err.name === 'MigrationLocked' || (attempt < 5 && (err.code === '23505' || err.code === '42P07'));
      if (!race || attempt >= 120) throw e;
      await new Promise((r) => setTimeout(r, 250 + Math.floor(Math.random() * 250)));
    }
  }
}

// The only place a database connection is made (ARCHITECTURE.md rule 7: knex
// never leaves db/). PostgreSQL through `pg` when DATABASE_URL is set; otherwise
// PGlite (PostgreSQL compiled to WASM) in the data directory, through knex-pglite,
// so the embedded default needs no server and runs the very same SQL.

import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { ACCOUNT_CHANNEL } from '../../migrations/008-account-change-notify.js';
import { migrations } from '../../migrations/index.js';
import { TresorError } from '../core/errors.js';
import { fsyncTree } from '../lib/fs-atomic.js';
import { isDatabaseUnavailable } from '../lib/transient.js';

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
      client: outageAwarePgClient(),
      connection: opts.url,
      // idleTimeoutMillis: an idle connection is closed after 30 s, so the pool does not keep
      // sockets to a server that restarted meanwhile. (A connection the server ended emits
      // 'error'/'end' and knex's pg client marks it disposed; the pool's validate step then
      // discards it on the next acquire: the pool recovers with no Tresor restart.)
      pool: { min: 0, max: 10, idleTimeoutMillis: 30_000 },
      acquireConnectionTimeout: 10_000,
      // Knex would print its warnings (with stacks) to the console, between the JSON log
      // lines on stdout; every failure it warns about also reaches the caller as an error.
      log: { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined },
    });
  }
  if (opts.embeddedDir) {
    await fs.mkdir(opts.embeddedDir, { recursive: true, mode: 0o700 });
    await initEmbeddedDir(path.resolve(opts.embeddedDir));
  }
  // Durability (issue 13): PGlite alone never flushes a commit to disk (fsync off, and
  // Emscripten's NODEFS has no fsync); embedded-fs.ts gives it one, so an acknowledged
  // commit survives a power cut as on PostgreSQL. The in-memory database of the tests
  // has nothing to flush. Loaded only here: a PostgreSQL deployment never pays for the
  // WASM engine's code.
  const [{ PGlite }, { default: ClientPgLite }, durable, { queryNamed }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('knex-pglite'),
    import('./embedded-fs.js'),
    import('./pglite-prepared.js'),
  ]);
  // knex-pglite hands every statement to PGlite.query(), unnamed; the ones named with
  // prepared() are parsed once instead (pglite-prepared.ts).
  type QueryObject = { sql?: string; bindings?: unknown[]; options?: { name?: string }; response?: unknown };
  const Base = ClientPgLite as unknown as new (config: Knex.Config) => { _query(connection: unknown, obj: QueryObject): Promise<QueryObject> };
  class NamedStatementsClient extends Base {
    override async _query(connection: unknown, obj: QueryObject): Promise<QueryObject> {
      const name = obj.options?.name;
      if (!name || !obj.sql) return super._query(connection, obj);
      obj.response = await queryNamed(connection as InstanceType<typeof PGlite>, name, obj.sql, obj.bindings ?? []);
      return obj;
    }
  }
  const pglite = opts.embeddedDir
    ? new PGlite({
        fs: new durable.DurableNodeFS(path.resolve(opts.embeddedDir)),
        postgresqlconf: [...EMBEDDED_CONF, ...durable.DURABLE_CONF],
        startParams: durable.DURABLE_START_PARAMS,
      })
    : new PGlite(undefined, { postgresqlconf: EMBEDDED_CONF });
  // Migration 008's triggers NOTIFY tresor_accounts when a transaction that changed an
  // account table commits; PGlite hands this process the notification before that
  // COMMIT's call returns (tested in test/db/account-cache.test.ts).
  const changes = { generation: 0 };
  await pglite.listen(ACCOUNT_CHANNEL, () => void changes.generation++);
  const db = knexFactory({
    client: NamedStatementsClient as unknown as typeof Knex.Client,
    dialect: 'postgres',
    connection: { pglite },
    useNullAsDefault: false,
  } as Knex.Config);
  accountChanges.set(db, changes);
  return db;
}

const accountChanges = new WeakMap<Db, { generation: number }>();

/**
 * On the embedded database only: a number that moves whenever a transaction that changed
 * users, devices, role_bindings, departments or revoked_certificates has committed, by
 * any code path (the triggers of migration 008). One process holds the embedded database
 * (the data directory's lock), so no change can commit unseen. Undefined on PostgreSQL,
 * where other nodes write and a notification reaches this one only later; and for a
 * transaction's own handle (it may see its uncommitted writes).
 */
export function accountChangesOf(db: Db): { readonly generation: number } | undefined {
  return accountChanges.get(db);
}

/** True for the in-process PGlite database (its knex client also derives from knex's pg one). */
export function isEmbedded(db: Db): boolean {
  const c = (db.client as { config?: { connection?: unknown } }).config?.connection;
  return typeof c === 'object' && c !== null && 'pglite' in c;
}

/**
 * A named statement: parsed once per connection instead of on every call (issue 13: for
 * the statements every C-STORE runs, Parse and Bind were most of their server time on
 * PostgreSQL, and parsing and planning half of the insert's time on PGlite, where
 * pglite-prepared.ts runs it). For statements whose text never varies: one name must
 * never stand for two texts (node-postgres refuses it; on PGlite the second text runs
 * unnamed).
 */
export function prepared<T>(raw: Knex.Raw<T>, name: string): Knex.Raw<T> {
  // Raw has knex's options() at run time (builder-interface-augmenter), not in its typings.
  return (raw as unknown as { options(o: { name: string }): Knex.Raw<T> }).options({ name });
}

/** How long a client is told to wait when PostgreSQL is down or restarting (HTTP Retry-After). */
export const DATABASE_RETRY_AFTER_SECONDS = 10;

/** A database outage as the core sees it: 'database-unavailable', kind 'unavailable'. */
export function databaseUnavailable(cause: unknown): TresorError {
  return new TresorError('database-unavailable', 'The database is unavailable; try again shortly.', { retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS, cause });
}

/** Rethrows an outage (src/lib/transient.ts) as 'database-unavailable'; anything else unchanged. */
function mapOutage(e: unknown): never {
  throw isDatabaseUnavailable(e) ? databaseUnavailable(e) : e;
}

/**
 * knex's pg client with its two doors to the server — taking a connection from the pool
 * and running a statement — turning "PostgreSQL is stopped, restarting or unreachable"
 * into TresorError('database-unavailable') (issue 11 item 3). The front doors then answer
 * 503 + Retry-After / DIMSE 0xA700 instead of a 500. A transaction's statements, COMMIT
 * included, go through query() too (knex's transaction client inherits from this one).
 * Only the pg client: PGlite runs in this process and has no outage of its own.
 */
function outageAwarePgClient(): typeof Knex.Client {
  // Not in knex's typings; the dialect's module is the class that `client: 'pg'` names.
  const PgClient = createRequire(import.meta.url)('knex/lib/dialects/postgres/index.js') as typeof Knex.Client;
  return class OutageAwarePgClient extends PgClient {
    override async acquireConnection(): Promise<unknown> {
      try {
        return await super.acquireConnection();
      } catch (e) {
        return mapOutage(e);
      }
    }

    override async query(connection: unknown, obj: unknown): Promise<unknown> {
      try {
        return await super.query(connection, obj);
      } catch (e) {
        return mapOutage(e);
      }
    }
  };
}

/**
 * The embedded server's memory settings. PGlite's defaults are a server's: 128 MB of
 * shared buffers inside the WASM heap, which a clinic's single process holds for ever
 * (idle RSS 300+ MB). 16 MB is plenty for one connection; the data files still sit in
 * the operating system's page cache. Measured (issue 13 item 4): PGlite alone after a
 * 100,000-row insert and scan, 312 MB → 161 MB RSS. (PGlite applies them to a data
 * directory only; the in-memory database of the tests keeps its defaults.)
 */
const EMBEDDED_CONF = ['shared_buffers=16MB', 'wal_buffers=1MB', 'maintenance_work_mem=16MB', 'work_mem=4MB'];

/**
 * Creates a new embedded data directory in a short-lived child process. PGlite runs
 * initdb as a second WASM instance plus a ~200 MB file-system bundle, and a process that
 * did so keeps ~500 MB more resident for the rest of its life; the child gives it all
 * back when it exits. An existing directory (PG_VERSION present) costs nothing here.
 */
async function initEmbeddedDir(dir: string): Promise<void> {
  try {
    await fs.access(path.join(dir, 'PG_VERSION'));
    return;
  } catch {
    // not initialised yet
  }
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const script = 'const { PGlite } = require(process.argv[1]); const db = new PGlite(process.argv[2]); db.waitReady.then(() => db.close()).catch((e) => { console.error(String(e && e.message || e)); process.exit(1); });';
  try {
    await promisify(execFile)(process.execPath, ['-e', script, entry, dir], { timeout: 120_000 });
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`could not create the embedded database in ${dir}: ${(err.stderr || err.message).trim()}`, { cause: e });
  }
  // The child's PGlite wrote the new cluster with fsync off: flush it once, so that the
  // first commits (made with fsync on) do not rest on files still in the page cache.
  await fsyncTree(dir);
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

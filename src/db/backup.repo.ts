// Backup and restore of the database, table-driven: the tables are read from the catalog
// (every table of the schema but knex's own), ordered so that a table comes after the
// tables its foreign keys point to, and every row travels as the JSON PostgreSQL makes of
// it (row_to_json) and comes back through json_populate_recordset, so each column keeps
// its exact type (timestamps to the microsecond, jsonb, arrays, bytea) whatever tables
// later migrations add. The snapshot is one REPEATABLE READ, READ ONLY transaction
// (PostgreSQL §13.2.2): every row of every table as of one instant.

import type { Knex } from 'knex';
import type { SnapshotReader } from '../core/backup.js';
import type { Db } from './knex.js';

const BATCH = 500;

async function tableOrder(q: Knex | Knex.Transaction): Promise<string[]> {
  const names: string[] = (
    await q.raw(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'knex\\_%' ORDER BY c.relname`,
    )
  ).rows.map((r: { name: string }) => r.name);
  const edges: { child: string; parent: string }[] = (
    await q.raw(
      `SELECT ch.relname AS child, pa.relname AS parent FROM pg_constraint k
       JOIN pg_class ch ON ch.oid = k.conrelid JOIN pg_class pa ON pa.oid = k.confrelid
       JOIN pg_namespace n ON n.oid = ch.relnamespace
       WHERE k.contype = 'f' AND n.nspname = current_schema()`,
    )
  ).rows;
  // Kahn's algorithm; alphabetical among equals so the order is stable.
  const parents = new Map(names.map((n) => [n, new Set(edges.filter((e) => e.child === n && e.parent !== n).map((e) => e.parent))]));
  const out: string[] = [];
  while (out.length < names.length) {
    const next = names.find((n) => !out.includes(n) && [...parents.get(n)!].every((p) => out.includes(p) || !names.includes(p)));
    if (!next) throw new Error('foreign keys form a cycle between tables; backup cannot order them');
    out.push(next);
  }
  return out;
}

async function primaryKey(q: Knex | Knex.Transaction, table: string): Promise<string[]> {
  const r = await q.raw(
    `SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
     WHERE i.indrelid = ?::regclass AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [table],
  );
  return r.rows.map((x: { name: string }) => x.name);
}

/** Runs `fn` on a consistent snapshot of the whole database. */
export async function withSnapshot<T>(db: Db, fn: (s: SnapshotReader) => Promise<T>): Promise<T> {
  return db.transaction(async (trx) => {
    await trx.raw('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const reader: SnapshotReader = {
      async migrations() {
        return (await trx('knex_migrations').select('name').orderBy('id')).map((r: { name: string }) => r.name);
      },
      tables: () => tableOrder(trx),
      async *rows(table) {
        const pk = await primaryKey(trx, table);
        if (pk.length === 0) {
          // No key to page by: one batch (such tables are small by design).
          const r = await trx.raw('SELECT row_to_json(t)::text AS j FROM ?? t', [table]);
          if (r.rows.length) yield r.rows.map((x: { j: string }) => x.j);
          return;
        }
        // Keyset paging on the primary key: each batch is cheap however large the table.
        let last: Knex.Value[] | undefined;
        const cols = pk.map(() => '??').join(', ');
        for (;;) {
          const where = last ? `WHERE (${cols}) > (${pk.map(() => '?').join(', ')})` : '';
          const r = await trx.raw(`SELECT row_to_json(t)::text AS j FROM ?? t ${where} ORDER BY ${cols} LIMIT ${BATCH}`, [
            table,
            ...(last ? [...pk, ...last] : []),
            ...pk,
          ]);
          const batch: string[] = r.rows.map((x: { j: string }) => x.j);
          if (batch.length === 0) return;
          yield batch;
          const lastRow = JSON.parse(batch[batch.length - 1]) as Record<string, unknown>;
          last = pk.map((c) => lastRow[c] as Knex.Value);
          if (batch.length < BATCH) return;
        }
      },
    };
    return fn(reader);
  });
}

/**
 * Tables a migration fills with one row of its own (audit_meta: where the legacy, un-MAC'd
 * audit rows end). An empty database has that row; the backup's row replaces it.
 */
const SEEDED_BY_MIGRATIONS = new Set(['audit_meta']);

export interface RestoreWriter {
  migrations(): Promise<string[]>;
  tables(): Promise<string[]>;
  /** Tables that hold at least one row (a restore goes into an empty database only). */
  nonEmptyTables(): Promise<string[]>;
  /** Inserts rows given as JSON text (from a snapshot) into `table`. */
  insert(table: string, rows: string[]): Promise<void>;
  /** Moves every serial/identity sequence past the largest restored value. */
  resetSequences(): Promise<void>;
  /** The newest audit row's id (0 when none). */
  lastAuditId(): Promise<number>;
}

export function restoreWriter(db: Db): RestoreWriter {
  return {
    async migrations() {
      return (await db('knex_migrations').select('name').orderBy('id')).map((r: { name: string }) => r.name);
    },
    tables: () => tableOrder(db),
    async nonEmptyTables() {
      const out: string[] = [];
      for (const t of await tableOrder(db)) {
        if (SEEDED_BY_MIGRATIONS.has(t)) continue;
        if ((await db.raw('SELECT EXISTS (SELECT 1 FROM ?? LIMIT 1) AS e', [t])).rows[0].e) out.push(t);
      }
      return out;
    },
    async insert(table, rows) {
      if (rows.length === 0) return;
      if (SEEDED_BY_MIGRATIONS.has(table)) await db(table).delete();
      // PostgreSQL converts each JSON field to the column's own type.
      await db.raw('INSERT INTO ?? SELECT * FROM json_populate_recordset(NULL::??, ?::json)', [table, table, `[${rows.join(',')}]`]);
    },
    async lastAuditId() {
      const r = (await db('audit_events').max('id as m').first()) as { m: number | string | null } | undefined;
      return Number(r?.m ?? 0);
    },
    async resetSequences() {
      const seqs = await db.raw(
        `SELECT c.relname AS tab, a.attname AS col, pg_get_serial_sequence(quote_ident(c.relname), a.attname) AS seq
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
           AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL`,
      );
      for (const s of seqs.rows as { tab: string; col: string; seq: string }[]) {
        await db.raw(`SELECT setval(?, COALESCE((SELECT max(??) FROM ??), 1), (SELECT max(??) FROM ??) IS NOT NULL)`, [s.seq, s.col, s.tab, s.col, s.tab]);
      }
    },
  };
}

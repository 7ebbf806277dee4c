// Named statements on the embedded database (src/db/pglite-prepared.ts, issue 13): a
// statement marked with prepared() is parsed once and then only bound and executed. It
// must answer exactly as PGlite.query does — the same rows and types, the same errors
// with their SQLSTATE — inside and outside transactions, under concurrent callers, and a
// failed run must leave neither a broken statement nor an open transaction behind.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, prepared, type Db } from '../../src/db/knex.js';

describe('named statements on PGlite', () => {
  let db: Db;
  const sql = `SELECT ?::bigint AS n, ?::jsonb AS doc, ?::timestamptz AS at, ?::text AS t, ?::int AS missing, 1 / ?::int AS quotient`;
  const named = (params: unknown[]) => prepared(db.raw(sql, params as never[]), 'test_named_probe');
  const unnamed = (params: unknown[]) => db.raw(sql, params as never[]);

  beforeAll(async () => {
    db = await openDb({});
    await db.raw('CREATE TABLE probe (id serial PRIMARY KEY, v text NOT NULL)');
  });
  afterAll(async () => {
    await db?.destroy();
  });

  it('answers as the unnamed statement does, and is prepared once in the backend', async () => {
    const params = [42, JSON.stringify({ a: [1, 'x'] }), new Date('2026-01-02T03:04:05.678Z'), 'héllo', null, 2];
    const a = (await named(params)).rows;
    const b = (await unnamed(params)).rows;
    expect(a).toEqual(b);
    expect(a[0]).toMatchObject({ doc: { a: [1, 'x'] }, t: 'héllo', missing: null, quotient: 0 });
    expect(a[0].at).toBeInstanceOf(Date);
    for (let i = 0; i < 7; i++) expect((await named([i, '{}', new Date(0), 's', null, 1])).rows[0].quotient).toBe(1);
    const statements = (await db.raw(`SELECT name FROM pg_prepared_statements WHERE name = 'test_named_probe'`)).rows;
    expect(statements).toHaveLength(1);
  });

  it('an error keeps its SQLSTATE, ends the implicit transaction, and the statement still runs afterwards', async () => {
    await expect(named([1, '{}', new Date(0), 's', null, 0])).rejects.toMatchObject({ code: '22012' }); // division by zero
    expect((await named([1, '{}', new Date(0), 's', null, 1])).rows[0].quotient).toBe(1);
    // No transaction was left open: an explicit BEGIN is not "already in a transaction".
    await db.transaction(async (trx) => {
      await trx('probe').insert({ v: 'after-error' });
    });
    expect((await db('probe').where({ v: 'after-error' })).length).toBe(1);
  });

  it('runs inside a transaction: sees its writes, and a rollback undoes what it did', async () => {
    const insert = (trx: Db | Parameters<Parameters<Db['transaction']>[0]>[0], v: string) =>
      prepared(trx.raw('INSERT INTO probe (v) VALUES (?) RETURNING id, (SELECT count(*) FROM probe WHERE v = ?) AS before', [v, v]), 'test_named_insert');
    await expect(
      db.transaction(async (trx) => {
        await insert(trx, 'rolled-back');
        const r = await insert(trx, 'rolled-back');
        expect(Number(r.rows[0].before)).toBe(1); // the first insert of this transaction is visible
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await db('probe').where({ v: 'rolled-back' })).toHaveLength(0);
    // A NOT NULL violation of the named insert inside a transaction fails that transaction only.
    await expect(db.transaction(async (trx) => void (await insert(trx, null as unknown as string)))).rejects.toMatchObject({ code: '23502' });
    expect((await insert(db, 'kept')).rows[0].id).toBeGreaterThan(0);
  });

  it('many callers at once, named and unnamed interleaved: every one gets its own answer', async () => {
    const runs = Array.from({ length: 60 }, (_, i) => (i % 2 ? named : unnamed)([i, JSON.stringify({ i }), new Date(i * 1000), `v${i}`, null, 1]));
    const results = await Promise.all(runs);
    results.forEach((r, i) => expect(r.rows[0]).toMatchObject({ n: i, doc: { i }, t: `v${i}` }));
  });

  it('a statement that fails to parse is not kept, and a name reused for another text runs unnamed', async () => {
    await expect(prepared(db.raw('SELEC 1'), 'test_named_broken')).rejects.toMatchObject({ code: '42601' });
    expect((await prepared(db.raw('SELECT 7 AS x'), 'test_named_broken')).rows[0].x).toBe(7);
    // Same name, other text: answered correctly (unnamed), never with the first text's plan.
    expect((await prepared(db.raw('SELECT 8 AS y'), 'test_named_broken')).rows[0].y).toBe(8);
  });
});

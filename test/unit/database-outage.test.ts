// The database outage mapping (issue 11 item 3): ONE classifier of "PostgreSQL is down or
// restarting" (src/lib/transient.ts), applied by db/knex.ts's pg client to every
// connection and statement, so the front doors answer "try again" (STOW 503 +
// Retry-After, DIMSE 0xA700) instead of a 500 — and only for outages: a statement's own
// error keeps its meaning. Against a real PostgreSQL where one can run (a closed port,
// and a session terminated by the server as `pg_ctl stop -m fast` does).

import fs from 'node:fs';
import knexFactory from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTresorError, TresorError } from '../../src/core/errors.js';
import type { IngestRepo } from '../../src/core/ingest.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { createIngestRepo } from '../../src/db/ingest.repo.js';
import { databaseUnavailable, openDb, type Db } from '../../src/db/knex.js';
import { statusForError } from '../../src/dimse/status.js';
import { failureOf, FAILURE } from '../../src/http/dicomweb/stow-response.js';
import { isDatabaseUnavailable } from '../../src/lib/transient.js';
import { allKeys, coreServices, createDepartment, principal, readAll, storesUnderTest } from '../helpers/core.js';
import { databasesUnderTest } from '../helpers/db.js';
import { freePort } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.js';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('isDatabaseUnavailable', () => {
  it.each([
    ['57P01 admin_shutdown', withCode('57P01', 'terminating connection due to administrator command')],
    ['57P02 crash_shutdown', withCode('57P02')],
    ['57P03 cannot_connect_now', withCode('57P03', 'the database system is starting up')],
    ['08006 connection_failure', withCode('08006')],
    ['08001 unable to connect', withCode('08001')],
    ['53300 too_many_connections', withCode('53300')],
    ['ECONNREFUSED', withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')],
    ['ECONNRESET', withCode('ECONNRESET')],
    ['EPIPE', withCode('EPIPE')],
    ['ETIMEDOUT', withCode('ETIMEDOUT')],
    ['ENOTFOUND (the database host name gone while its container is replaced)', withCode('ENOTFOUND')],
    ['starting up, without a code', new Error('the database system is starting up')],
    ["pg's client-side end", new Error('Connection terminated unexpectedly')],
    ["knex's pool timeout", new knexFactory.KnexTimeoutError('Knex: Timeout acquiring a connection. The pool is probably full.')],
    ['a wrapped one', new Error('outer', { cause: withCode('57P01') })],
    ['happy eyeballs', Object.assign(new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')], 'connect failed'), {})],
  ])('%s is an outage', (_n, e) => expect(isDatabaseUnavailable(e)).toBe(true));

  it.each([
    ['23505 unique_violation', withCode('23505')],
    ['42P01 undefined_table', withCode('42P01')],
    ['42601 syntax error', withCode('42601')],
    ['57014 query_canceled (a statement timeout is the statement, not the server)', withCode('57014')],
    ['ENOENT', withCode('ENOENT')],
    ['a TypeError', new TypeError('cannot read properties of undefined')],
    ['a string', 'ECONNREFUSED'],
    ['undefined', undefined],
    ['an aggregate of mixed errors', new AggregateError([withCode('ECONNREFUSED'), withCode('23505')])],
  ])('%s is not', (_n, e) => expect(isDatabaseUnavailable(e)).toBe(false));
});

describe('the front doors answer an outage as "try again"', () => {
  const outage = new TresorError('database-unavailable', 'The database is unavailable; try again shortly.', { retryAfterSeconds: 10 });
  it('DIMSE: 0xA700 Out of Resources for C-STORE and C-FIND (PS3.4 B.2.3, C.4.1.1.4)', () => {
    expect(statusForError(outage, 'C-STORE')).toEqual({ status: 0xa700, comment: 'database-unavailable' });
    expect(statusForError(outage, 'C-FIND')).toEqual({ status: 0xa700, comment: 'database-unavailable' });
  });
  it('STOW-RS: Failure Reason A700 with the Retry-After of the error', () => {
    expect(failureOf(outage)).toEqual({ reason: FAILURE.outOfResources, conflict: false, retryAfterSeconds: 10 });
  });
});

describe('db/knex.ts on a real PostgreSQL', () => {
  let pgs: PrivatePostgres;
  let db: Db;
  beforeAll(async () => {
    pgs = await startPrivatePostgres();
    db = await openDb({ url: pgs.url });
  }, 120_000);
  afterAll(async () => {
    await db?.destroy();
    await pgs?.close();
  });

  const caught = async (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

  it('nothing listening: database-unavailable with Retry-After, the driver error as its cause', async () => {
    const nobody = await openDb({ url: `postgres://postgres@127.0.0.1:${await freePort()}/postgres` });
    try {
      const e = await caught(nobody.raw('select 1'));
      expect(isTresorError(e) && e.reason).toBe('database-unavailable');
      expect((e as TresorError).kind).toBe('unavailable');
      expect((e as TresorError).retryAfterSeconds).toBe(10);
      expect(((e as TresorError).cause as { code?: string }).code).toBe('ECONNREFUSED');
      // The message is the caller's to see: no host, no port, no driver text.
      expect((e as Error).message).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
      // Inside a transaction too (BEGIN is the first statement).
      expect(isTresorError(await caught(nobody.transaction(async (trx) => trx.raw('select 1'))))).toBe(true);
    } finally {
      await nobody.destroy();
    }
  });

  it("a statement's own error is not an outage and keeps its SQLSTATE", async () => {
    const e = await caught(db.raw('select * from no_such_table'));
    expect(isTresorError(e)).toBe(false);
    expect((e as { code?: string }).code).toBe('42P01');
  });

  it('a session the server ends (57P01, as pg_ctl stop -m fast does) is an outage; the pool recovers by itself', async () => {
    const pid = Number((await db.raw('select pg_backend_pid() as pid')).rows[0].pid);
    const running = caught(db.transaction(async (trx) => trx.raw('select pg_backend_pid(), pg_sleep(30)')));
    // Wait until that transaction sleeps in the server, then end its session from another one.
    const other = await openDb({ url: pgs.url });
    try {
      for (let i = 0; i < 100; i++) {
        const r = await other.raw("select pid from pg_stat_activity where query like '%pg_sleep(30)%' and pid <> pg_backend_pid()");
        if (r.rows.length) {
          await other.raw('select pg_terminate_backend(?)', [r.rows[0].pid]);
          break;
        }
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      await other.destroy();
    }
    const e = await running;
    expect(isTresorError(e) && e.reason, String(e)).toBe('database-unavailable');
    // pg reports either the server's FATAL 57P01 or its own "Connection terminated unexpectedly".
    const cause = (e as TresorError).cause as Error & { code?: string };
    expect(cause.code === '57P01' || /terminated/.test(cause.message), String(cause)).toBe(true);
    // The dead connection is dropped, not handed out again: the next statements succeed.
    for (let i = 0; i < 3; i++) expect((await db.raw('select 1 as one')).rows[0].one).toBe(1);
    expect(pid).toBeGreaterThan(0);
  }, 60_000);

  it('stopped and started again: outage while down, answers again afterwards with no new knex', async () => {
    expect((await db.raw('select 1 as one')).rows[0].one).toBe(1);
    await pgs.stop('fast');
    try {
      const e = await caught(db.raw('select 1'));
      expect(isTresorError(e) && e.reason, String(e)).toBe('database-unavailable');
    } finally {
      await pgs.start();
    }
    expect((await db.raw('select 1 as one')).rows[0].one).toBe(1);
  }, 60_000);
});

// The row transaction meets the outage after the blob is written (core/ingest.ts). The
// COMMIT may have been applied with only its answer lost, or not at all; the ingest
// cannot tell, so it keeps the blob journaled either way: deleting it could leave a
// committed row without its object. Both cases, made exact by wrapping the real repo.
describe('ingest when the database goes away during the row transaction', () => {
  const CT = `${SAMPLE_DIR}/CT_small.dcm`;
  let db: Db;
  let store: BlobStore;
  let close: () => Promise<void>;
  let dept: number;
  beforeAll(async () => {
    const d = await databasesUnderTest()[0].open();
    const s = await storesUnderTest()[0].open();
    [db, store] = [d.db, s.store];
    close = async () => { await s.close(); await d.close(); };
    dept = await createDepartment(db, 'outage');
  });
  afterAll(async () => close?.());

  const rows = async (t: string) => Number((await db(t).count({ n: '*' }))[0].n);
  const writer = () => principal('CT', [[dept, 'writer']]);
  const outage = () => databaseUnavailable(Object.assign(new Error('Connection terminated unexpectedly'), {}));

  it('committed, answer lost: reported as a retryable failure, the object kept whole; the re-send is a success (duplicate), and the sweep keeps it', async () => {
    const real = createIngestRepo(db);
    const lostAck: IngestRepo = { ...real, insert: async (n) => { await real.insert(n); throw outage(); } };
    const svc = await coreServices(db, store, { ingestRepo: lostAck });
    const e = await svc.ingest.ingestFile(writer(), CT, { via: 'dimse' }).then(() => undefined, (x: unknown) => x);
    expect(isTresorError(e) && e.reason).toBe('database-unavailable');
    expect(await rows('instances')).toBe(1);
    const [{ object_key: key }] = await db('instances').select('object_key');
    expect(await allKeys(store)).toEqual([key]); // the row's blob is there (a delete here would lose it)
    expect((await readAll(await store.get(key))).equals(fs.readFileSync(CT))).toBe(true);
    const again = await (await coreServices(db, store)).ingest.ingestFile(writer(), CT, { via: 'dimse' });
    expect(again.outcome).toBe('duplicate');
    expect(await (await coreServices(db, store)).deps.sweepBlobs({ minAgeMs: 0 })).toEqual({ deleted: 0, kept: 0, failed: 0 });
    expect(await allKeys(store)).toEqual([key]);
    await db.raw('TRUNCATE studies, series, instances, blob_journal RESTART IDENTITY CASCADE');
    for (const k of await allKeys(store)) await store.delete(k);
  });

  it('not committed: a retryable failure, the blob journaled; the re-send stores afresh, and the sweep removes the first blob', async () => {
    const real = createIngestRepo(db);
    const never: IngestRepo = { ...real, insert: async () => { throw outage(); } };
    const svc = await coreServices(db, store, { ingestRepo: never });
    await expect(svc.ingest.ingestFile(writer(), CT, { via: 'dicomweb' })).rejects.toMatchObject({ reason: 'database-unavailable', retryAfterSeconds: 10 });
    expect(await rows('instances')).toBe(0);
    expect(await allKeys(store)).toHaveLength(1);
    expect(await rows('blob_journal')).toBe(1);
    const again = await (await coreServices(db, store)).ingest.ingestFile(writer(), CT, { via: 'dicomweb' });
    expect(again.outcome).toBe('stored');
    expect(await (await coreServices(db, store)).deps.sweepBlobs({ minAgeMs: 0 })).toEqual({ deleted: 1, kept: 0, failed: 0 });
    const [{ object_key: key }] = await db('instances').select('object_key');
    expect(await allKeys(store)).toEqual([key]);
    expect(await rows('blob_journal')).toBe(0);
  });
});

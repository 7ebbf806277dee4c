// The audit chain's append (db/audit.repo.ts) under the conditions that would break it:
// many writers at once — on PostgreSQL through two connection pools, as two nodes — must
// still give one linear chain that verifies (every row's predecessor is the row before
// it, no two rows share one); and a failed append must leave no transaction open and no
// lock held, so later appends on the same pooled connections go through. On PGlite, and
// on PostgreSQL with TEST_DATABASE_URL (where the append takes three round trips). On
// PGlite the append is one INSERT after the head kept in memory: two repos of one database
// (nodeA, nodeB) share it, and a failed append makes the next one read the head again.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditLog, type AuditLog } from '../../src/core/audit.js';
import { createAuditRepo } from '../../src/db/audit.repo.js';
import { openDb, type Db } from '../../src/db/knex.js';
import { auditKeyFrom } from '../../src/pki/audit-key.js';
import { databasesUnderTest } from '../helpers/db.js';

describe.each(databasesUnderTest())('audit append on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let second: Db | undefined;
  const key = auditKeyFrom(randomBytes(32));
  let nodeA: AuditLog;
  let nodeB: AuditLog;

  beforeAll(async () => {
    t = await dbu.open();
    // PostgreSQL: a second pool on the same database, as a second node. PGlite has one connection.
    const url = (t.db.client as { config?: { connection?: unknown } }).config?.connection;
    if (typeof url === 'string') second = await openDb({ url });
    nodeA = createAuditLog(createAuditRepo(t.db), undefined, { key });
    nodeB = createAuditLog(createAuditRepo(second ?? t.db), undefined, { key });
  });
  afterAll(async () => {
    await second?.destroy();
    await t?.close();
  });

  it('many writers at once, on two nodes: one linear chain that verifies', async () => {
    const writes = Array.from({ length: 40 }, (_, i) =>
      (i % 2 ? nodeA : nodeB).record({ action: 'association', outcome: 'success', source: `10.0.0.${i}`, details: { via: 'dimse', n: i } }),
    );
    await Promise.all(writes);
    const rows = await t.db('audit_events').orderBy('id').select('id', 'prev_hash', 'hash');
    expect(rows).toHaveLength(40);
    expect(new Set(rows.map((r) => r.prev_hash)).size).toBe(40);
    for (let i = 1; i < rows.length; i++) expect(rows[i].prev_hash).toBe(rows[i - 1].hash);
    expect(await nodeA.verify()).toMatchObject({ ok: true, count: 40, macChecked: true });
  });

  it('a failed append leaves no transaction open and no lock held: the next appends go through', async () => {
    const repo = createAuditRepo(t.db);
    // Fails inside the transaction, after the lock was taken: in `make`, and at the insert (NOT NULL).
    await expect(repo.append(() => { throw new Error('boom'); })).rejects.toThrow('boom');
    await expect(
      repo.append((prevHash) => ({ at: new Date().toISOString(), principalKind: null as unknown as string, principalId: null, principalName: null, source: null, action: 'x', outcome: 'success', studyUids: [], details: {}, prevHash, hash: randomBytes(32).toString('hex'), mac: null })),
    ).rejects.toThrow();
    // Every pooled connection used again (pool max 10): none is stuck in an aborted
    // transaction, and the advisory lock is free (else these would wait for ever).
    await Promise.all(Array.from({ length: 12 }, (_, i) => nodeA.record({ action: 'association', outcome: 'success', details: { after: i } })));
    expect(await t.db('audit_events').count({ n: '*' }).first()).toMatchObject({ n: 52 });
    expect(await nodeB.verify()).toMatchObject({ ok: true, count: 52 });
  }, 30_000);
});

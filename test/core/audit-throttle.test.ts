// A flood of bad tokens must not flood the audit trail (each row is hash-chained
// and written under a lock): per source and minute, 20 refusals are audited one by
// one, the rest are counted and reported by the next audited refusal.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRefusalThrottle } from '../../src/core/audit-throttle.js';
import { migrate, openDb, type Db } from '../../src/db/knex.js';
import { ADMIN_PASSWORD } from '../helpers/fixtures.js';
import { startTestServer, tempDir, testPki, type TestServer } from '../helpers/http.js';

describe('refusal throttle', () => {
  it('admits 20 per source and window, then counts, and carries the count into the next window', () => {
    let t = 0;
    const th = createRefusalThrottle(() => new Date(t));
    const admitted = Array.from({ length: 50 }, () => th.admit('10.0.0.1')).filter(Boolean);
    expect(admitted).toHaveLength(20);
    expect(th.admit('10.0.0.2')).toEqual({ suppressed: 0 }); // another source is not affected
    t += 60_000;
    expect(th.admit('10.0.0.1')).toEqual({ suppressed: 30 });
    expect(th.admit('10.0.0.1')).toEqual({ suppressed: 0 });
  });
});

describe('bad-token flood over HTTPS', () => {
  let dir: string;
  let db: Db;
  let s: TestServer;
  beforeAll(async () => {
    dir = await tempDir();
    db = await openDb({});
    await migrate(db);
    s = await startTestServer({ db, pki: await testPki(), dataDir: dir, adminPassword: ADMIN_PASSWORD });
  });
  afterAll(async () => {
    await s?.close();
    await db?.destroy();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses every request but audits at most 20 of them per minute', async () => {
    for (let i = 0; i < 60; i++) {
      const r = await s.request('GET', '/admin/users', { headers: { authorization: `Bearer not.a.token${i}` } });
      expect(r.status).toBe(401);
    }
    const rows = await s.audit.list({ action: 'token.refused', limit: 1000 });
    expect(rows).toHaveLength(20);
    expect((await s.audit.verify()).ok).toBe(true);
  });
});

// Issue 11 item 2: two `tresor serve` nodes on one PostgreSQL behave as one server. Both
// nodes are built as main.ts builds them (test/helpers/nodes.ts), with the same
// DATABASE_URL and TRESOR_MASTER_KEY_FILE and their own data directories, started at
// the same time on an empty database. PostgreSQL is required (PGlite is one process's
// database): these tests run when TEST_DATABASE_URL is set, and fail in CI without it.

import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, USER_PASSWORD } from '../helpers/fixtures.js';
import { run, tlsArgs } from '../helpers/dimse-tools.js';
import { emptyPostgres, startNode, type TestNode } from '../helpers/nodes.js';
import { SAMPLE_DIR } from '../helpers/samples.js';
import { createAuditLog } from '../../src/core/audit.js';
import { createAuditRepo } from '../../src/db/audit.repo.js';
import { createNodeSecretsRepo } from '../../src/db/node-secrets.repo.js';
import { ensureDbPki } from '../../src/pki/db-pki.js';
import { deriveKey, loadMasterKey, writeMasterKeyFile } from '../../src/pki/master-key.js';

const CT = path.join(SAMPLE_DIR, 'CT_small.dcm');
const adminUrl = process.env.TEST_DATABASE_URL;

if (!adminUrl) {
  describe('two nodes on one PostgreSQL', () => {
    it('needs TEST_DATABASE_URL (a PostgreSQL server)', () => {
      // Not a skip: in CI the several-nodes proof must run, so its absence is a failure.
      if (process.env.CI) throw new Error('TEST_DATABASE_URL is not set: the several-nodes tests need PostgreSQL (set it in CI)');
    });
  });
} else {
  describe('two nodes on one PostgreSQL and one master key', () => {
    let pg: { url: string; drop(): Promise<void> };
    let dir: string;
    let keyFile: string;
    let n1: TestNode;
    let n2: TestNode;
    let adminToken1: string;

    const login = async (n: TestNode, username: string, password: string) => n.request('POST', '/auth/token', { body: { username, password } });

    beforeAll(async () => {
      pg = await emptyPostgres(adminUrl);
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-nodes-'));
      keyFile = path.join(dir, 'master.key');
      await writeMasterKeyFile(keyFile);
      const common = { databaseUrl: pg.url, masterKeyFile: keyFile, lockoutPolicy: { accountThreshold: 4 }, keyRefreshMs: 500 };
      // Both at once on an empty database: one migration, one CA, one token key.
      [n1, n2] = await Promise.all([startNode({ name: 'node1', adminPassword: ADMIN_PASSWORD, ...common }), startNode({ name: 'node2', adminPassword: ADMIN_PASSWORD, ...common })]);
      const r = await login(n1, 'admin', ADMIN_PASSWORD);
      expect(r.status).toBe(200);
      adminToken1 = r.body.access_token;
    }, 120_000);

    afterAll(async () => {
      await n1?.close();
      await n2?.close();
      await pg?.drop();
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('nodes started together share one CA, one server certificate and one token key, sealed in the database', async () => {
      expect(n2.deps.pki.caCertPem).toBe(n1.deps.pki.caCertPem);
      expect(n2.deps.pki.serverCertPem).toBe(n1.deps.pki.serverCertPem);
      expect(n2.deps.pki.serverEc!.certPem).toBe(n1.deps.pki.serverEc!.certPem);
      const rows = await n1.deps.db('node_secrets').select('purpose', 'id', 'sealed_key');
      expect(rows.filter((r) => r.purpose === 'ca')).toHaveLength(1);
      expect(rows.filter((r) => r.purpose === 'server')).toHaveLength(1);
      expect(rows.filter((r) => r.purpose === 'server-ec')).toHaveLength(1);
      expect(rows.filter((r) => r.purpose === 'token')).toHaveLength(1);
      // No private key in clear in the database.
      const dump = JSON.stringify(await n1.deps.db('node_secrets').select());
      expect(dump).not.toMatch(/PRIVATE KEY/);
      // Nothing under the data directories' tls/: the PKI is the database's.
      await expect(fs.access(path.join(n1.dataDir, 'tls'))).rejects.toThrow();
    });

    it('a token from node 1 works on node 2', async () => {
      const r = await n2.request('GET', '/admin/users', { token: adminToken1 });
      expect(r.status).toBe(200);
      expect(r.body.users.map((u: any) => u.username)).toContain('admin');
    });

    it('a revocation on node 2 is refused on node 1', async () => {
      expect((await n1.request('POST', '/admin/departments', { token: adminToken1, body: { name: 'radiology' } })).status).toBe(201);
      const created = await n1.request('POST', '/admin/users', { token: adminToken1, body: { username: 'hana', password: USER_PASSWORD, roles: [{ department: 'radiology', role: 'reader' }] } });
      expect(created.status, created.text).toBe(201);
      const viewer = (await login(n1, 'hana', USER_PASSWORD)).body.access_token;
      expect((await n1.request('GET', '/dicomweb/studies', { token: viewer })).status).toBeLessThan(300);
      expect((await n2.request('PATCH', '/admin/users/hana', { token: adminToken1, body: { disabled: true } })).status).toBe(200);
      expect((await n1.request('GET', '/dicomweb/studies', { token: viewer })).status).toBe(401);
      expect((await login(n1, 'hana', USER_PASSWORD)).status).toBe(401);
    });

    it('a login lockout counts failures on both nodes', async () => {
      expect((await n1.request('POST', '/admin/users', { token: adminToken1, body: { username: 'grace', password: USER_PASSWORD, roles: [{ department: 'radiology', role: 'reader' }] } })).status).toBe(201);
      // accountThreshold 4: two failures on each node lock the account everywhere.
      for (const n of [n1, n2, n1, n2]) expect((await login(n, 'grace', 'wrong password 123')).status).toBe(401);
      for (const n of [n1, n2]) {
        const r = await login(n, 'grace', USER_PASSWORD);
        expect(r.status).toBe(401);
        expect(r.body.error.code).toBe('locked');
      }
    });

    it('a device enrolled on node 1 stores through node 2 over TLS (dcmtk storescu)', async () => {
      expect((await n1.request('POST', '/admin/devices', { token: adminToken1, body: { aeTitle: 'CT01', roles: [{ department: 'radiology', role: 'writer' }] } })).status).toBe(201);
      const issued = await n1.request('POST', '/admin/devices/CT01/certificate', { token: adminToken1 });
      expect(issued.status).toBe(201);
      const c = { keyPath: path.join(dir, 'ct01.key'), certPath: path.join(dir, 'ct01.crt') };
      const caPath = path.join(dir, 'ca.crt');
      await fs.writeFile(c.keyPath, issued.body.privateKey, { mode: 0o600 });
      await fs.writeFile(c.certPath, issued.body.certificate);
      await fs.writeFile(caPath, issued.body.ca);
      const r = await run('storescu', ['-aet', 'CT01', '-aec', 'TRESOR', ...tlsArgs(c, caPath), '127.0.0.1', String(n2.dimsePort), CT]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const stored = await n1.deps.db('instances').count<{ n: number }[]>({ n: '*' });
      expect(Number(stored[0].n)).toBe(1);
      // Revoked on node 2 (disabled): refused by node 1.
      expect((await n2.request('PATCH', '/admin/devices/CT01', { token: adminToken1, body: { disabled: true } })).status).toBe(200);
      const refused = await run('storescu', ['-aet', 'CT01', '-aec', 'TRESOR', ...tlsArgs(c, caPath), '127.0.0.1', String(n1.dimsePort), CT]);
      expect(refused.code).not.toBe(0);
    });

    it('a key rotation on node 1 is accepted on node 2', async () => {
      const before = (await n2.deps.db('node_secrets').where({ purpose: 'token' }).select('id')).map((r) => r.id);
      const kid = await n1.deps.identity.tokens.rotate();
      expect(before).not.toContain(kid);
      const fresh = (await login(n1, 'admin', ADMIN_PASSWORD)).body.access_token as string;
      expect(JSON.parse(Buffer.from(fresh.split('.')[0], 'base64url').toString()).kid).toBe(kid);
      // Node 2 has never seen this kid: the unknown kid makes it re-read the keys.
      expect((await n2.request('GET', '/admin/users', { token: fresh })).status).toBe(200);
      // Tokens of the old key still work on both.
      expect((await n2.request('GET', '/admin/users', { token: adminToken1 })).status).toBe(200);
      // And node 2 now signs with the new key too (periodic refresh).
      await waitFor(async () => {
        const t2 = (await login(n2, 'admin', ADMIN_PASSWORD)).body.access_token as string;
        return JSON.parse(Buffer.from(t2.split('.')[0], 'base64url').toString()).kid === kid;
      });
    });

    it('a server certificate renewed on one node is served by the other', async () => {
      const old = new X509Certificate(n2.deps.pki.serverCertPem).fingerprint256;
      const oldEc = new X509Certificate(n2.deps.pki.serverEc!.certPem).fingerprint256;
      const sealKey = deriveKey(await loadMasterKey(keyFile), 'tresor/sealed-keys/v1');
      // What `tresor tls renew` does with TRESOR_MASTER_KEY_FILE set.
      const renewed = await ensureDbPki({ repo: createNodeSecretsRepo(n1.deps.db), sealKey, hostnames: [], renewServer: true });
      const fp = new X509Certificate(renewed.serverCertPem).fingerprint256;
      const ecFp = new X509Certificate(renewed.serverEc!.certPem).fingerprint256;
      expect(fp).not.toBe(old);
      expect(ecFp).not.toBe(oldEc);
      expect(renewed.caCertPem).toBe(n2.deps.pki.caCertPem);
      // Both pairs: the ECDSA one to a TLS 1.3 client, the RSA one to an ECDHE-RSA-only TLS 1.2 client.
      await waitFor(async () => (await peerFingerprint(n2.url, n2.deps.pki.caCertPem)) === ecFp);
      expect(await peerFingerprint(n2.url, n2.deps.pki.caCertPem, true)).toBe(fp);
      // The DICOM port too.
      await waitFor(async () => (await peerFingerprint(`https://127.0.0.1:${n2.dimsePort}`, n2.deps.pki.caCertPem)) === ecFp);
      expect(await peerFingerprint(`https://127.0.0.1:${n2.dimsePort}`, n2.deps.pki.caCertPem, true)).toBe(fp);
    });

    it('the anonymous-refusal audit throttle is one budget per address across both nodes', async () => {
      const before = await n1.deps.db('audit_events').where({ action: 'token.refused' }).count<{ n: number }[]>({ n: '*' });
      // 15 garbage tokens on each node from 127.0.0.1: the budget is 20 a minute in all, not 20 per node.
      for (let i = 0; i < 15; i++) for (const n of [n1, n2]) expect((await n.request('GET', '/admin/users', { token: `garbage.${i}.token` })).status).toBe(401);
      const after = await n1.deps.db('audit_events').where({ action: 'token.refused' }).count<{ n: number }[]>({ n: '*' });
      expect(Number(after[0].n) - Number(before[0].n)).toBe(20);
    });

    it('the audit chain stays linear and verifies after concurrent writes on both nodes', async () => {
      const principal = { kind: 'user', id: 1, name: 'admin' } as const;
      await Promise.all(
        Array.from({ length: 60 }, (_, i) => (i % 2 ? n1 : n2).deps.audit.record({ action: 'query', outcome: 'success', principal, details: { via: 'dicomweb', i } })),
      );
      const rows = await n1.deps.db('audit_events').orderBy('id').select('id', 'prev_hash', 'hash', 'mac');
      // Linear: every row links to the row before it, no two rows share a predecessor.
      for (let i = 1; i < rows.length; i++) expect(rows[i].prev_hash).toBe(rows[i - 1].hash);
      expect(new Set(rows.map((r) => r.prev_hash)).size).toBe(rows.length);
      expect(rows.every((r) => typeof r.mac === 'string')).toBe(true);
      // Both nodes hold the same audit key (from the master key): each verifies every row.
      await n1.deps.audit.checkpoint();
      await n2.deps.audit.checkpoint();
      for (const n of [n1, n2]) {
        const v = await n.deps.audit.verify();
        expect(v).toMatchObject({ ok: true, count: rows.length, legacy: 0, macChecked: true });
        expect(v.checkpoints).toBeGreaterThanOrEqual(1);
      }
      // A database-only verifier (no key) sees the chain but cannot check MACs.
      expect(await createAuditLog(createAuditRepo(n1.deps.db)).verify()).toMatchObject({ ok: true, macChecked: false });
    });
  });
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The SHA-256 fingerprint of the certificate a TLS server presents. */
/** The fingerprint of the certificate a server presents; `rsaOnly`: as a TLS 1.2 client with ECDHE-RSA suites only (dcmtk 3.6.7's profile). */
function peerFingerprint(url: string, ca: string, rsaOnly = false): Promise<string> {
  const u = new URL(url);
  const only = rsaOnly ? { maxVersion: 'TLSv1.2' as const, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256' } : {};
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: u.hostname, port: Number(u.port), ca, servername: undefined, rejectUnauthorized: false, ...only }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? '';
      s.destroy();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

// GET /console/api/system and GET /admin/edges through the console's cookie: the figures
// are the installation's (counts that move when a study is stored, the CA and server
// certificate end dates, each device's, free disk space, health as /readyz sees it); only
// global admins see them, a department admin and a reader get 404. Edges come from the
// association audit rows (written here through the real audit log, as dimse/scp.ts does
// for an association that announced `EDGE:<name>`).

import fs from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { expectErrorBody } from '../helpers/error-body.js';
import { ADMIN_PASSWORD, USER_PASSWORD } from '../helpers/fixtures.js';
import { multipart, raw } from '../helpers/dicomweb.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { startTestServer, tempDir, testPki, type TestServer } from '../helpers/http.js';

let pki: Pki;
beforeAll(async () => {
  pki = await testPki();
});

describe.each(databasesUnderTest())('console overview on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let dir: string;
  let s: TestServer;
  let adminToken: string;

  async function cookie(username: string, password = USER_PASSWORD): Promise<Record<string, string>> {
    const r = await s.request('POST', '/auth/session', { body: { username, password } });
    expect(r.status, r.text).toBe(200);
    return { cookie: String([r.headers['set-cookie']].flat()[0]).split(';')[0]! };
  }

  beforeAll(async () => {
    t = await dbu.open();
    dir = await tempDir();
    s = await startTestServer({ db: t.db, pki, dataDir: dir, adminPassword: ADMIN_PASSWORD });
    adminToken = await s.login('admin', ADMIN_PASSWORD);
    expect((await s.request('POST', '/admin/departments', { token: adminToken, body: { name: 'radiology' } })).status).toBe(201);
    for (const [username, role] of [['rad-admin', 'admin'], ['rad-reader', 'reader']] as const) {
      expect((await s.request('POST', '/admin/users', { token: adminToken, body: { username, password: USER_PASSWORD, roles: [{ department: 'radiology', role }] } })).status).toBe(201);
    }
    for (const ae of ['CT1', 'MR1']) {
      expect((await s.request('POST', '/admin/devices', { token: adminToken, body: { aeTitle: ae, roles: [{ department: 'radiology', role: 'writer' }] } })).status).toBe(201);
    }
    expect((await s.request('POST', '/admin/devices/CT1/certificate', { token: adminToken, body: { days: 20 } })).status).toBe(201);
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('shows version, health, counts, certificate end dates and disk space to a global admin', async () => {
    const headers = await cookie('admin', ADMIN_PASSWORD);
    const before = await s.request('GET', '/console/api/system', { headers });
    expect(before.status, before.text).toBe(200);
    const inst = reissue();
    const mp = multipart([{ body: inst.bytes }]);
    expect((await raw(s.url, s.ca, 'POST', '/dicomweb/studies?department=radiology', { token: adminToken, headers: { 'content-type': mp.contentType, accept: 'application/dicom+json' }, body: mp.body })).status).toBe(200);
    const r = await s.request('GET', '/console/api/system', { headers });
    expect(r.status).toBe(200);
    expect(r.body.version).toBe(JSON.parse(await fs.readFile('package.json', 'utf8')).version);
    expect(r.body.health).toEqual({ database: 'ok', blobStore: 'ok' });
    expect(r.body.counts).toMatchObject({ departments: 1, users: 3, devices: 2 });
    expect(r.body.counts.studies).toBe(before.body.counts.studies + 1);
    expect(r.body.counts.instances).toBe(before.body.counts.instances + 1);
    expect(r.body.counts.bytes).toBe(before.body.counts.bytes + inst.bytes.length);
    expect(r.body.certificates.ca.notAfter).toBe(new Date(new X509Certificate(pki.caCertPem).validTo).toISOString());
    expect(r.body.certificates.server.notAfter).toBe(new Date(new X509Certificate(pki.serverCertPem).validTo).toISOString());
    const ct1 = r.body.certificates.devices.find((d: any) => d.aeTitle === 'CT1');
    const days = (new Date(ct1.notAfter).getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(19);
    expect(days).toBeLessThan(21);
    expect(r.body.certificates.devices.find((d: any) => d.aeTitle === 'MR1').notAfter).toBeNull();
    expect(r.body.disk.dataDir.freeBytes).toBeGreaterThan(0);
    expect(r.body.disk.dataDir.totalBytes).toBeGreaterThanOrEqual(r.body.disk.dataDir.freeBytes);
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('lists edges with the devices behind each and their last contact', async () => {
    const ct1 = Number((await t.db('devices').where({ ae_title: 'CT1' }).first()).id);
    const mr1 = Number((await t.db('devices').where({ ae_title: 'MR1' }).first()).id);
    const assoc = (id: number, name: string, edge: string | undefined, outcome: 'success' | 'failure' = 'success') =>
      s.audit.record({ action: 'association', outcome, principal: { kind: 'device', id, name }, source: '10.0.0.9', details: { via: 'dimse', ...(edge ? { edge } : {}) } });
    await assoc(ct1, 'CT1', 'WARD3');
    await assoc(ct1, 'CT1', 'WARD3');
    await assoc(mr1, 'MR1', 'WARD3');
    await assoc(mr1, 'MR1', undefined); // direct, not through an edge
    await assoc(ct1, 'CT1', 'GHOST', 'failure'); // refused: no contact
    const r = await s.request('GET', '/admin/edges', { headers: await cookie('admin', ADMIN_PASSWORD) });
    expect(r.status, r.text).toBe(200);
    expect(r.body.edges).toHaveLength(1);
    const [edge] = r.body.edges;
    expect(edge.name).toBe('WARD3');
    expect(edge.devices.map((d: any) => d.aeTitle).sort()).toEqual(['CT1', 'MR1']);
    expect(edge.devices.find((d: any) => d.aeTitle === 'CT1')).toMatchObject({ associations: 2, source: '10.0.0.9' });
    expect(Date.now() - new Date(edge.lastContact).getTime()).toBeLessThan(60_000);
  });

  it('is 404 for a department admin and a reader (and 401 without credentials)', async () => {
    for (const user of ['rad-admin', 'rad-reader']) {
      const headers = await cookie(user);
      expectErrorBody(await s.request('GET', '/console/api/system', { headers }), 404, 'not-found');
      expectErrorBody(await s.request('GET', '/admin/edges', { headers }), 404, 'not-found');
    }
    expectErrorBody(await s.request('GET', '/console/api/system'), 401);
    expectErrorBody(await s.request('GET', '/admin/edges'), 401);
  });
});

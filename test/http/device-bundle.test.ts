// POST /admin/devices/{ae}/bundle: the ZIP, unzipped with Info-ZIP and used unchanged —
// its storescu.sh (dcmtk over TLS with the bundle's key, certificate and CA) stores a file
// in the running Tresor; the key is 0600; orthanc.json and README name the right service;
// the edge variant's edge.json parses with `tresor edge`'s loader; the same authorization
// (a reader is refused, a department admin outside the device's department sees 404) and
// audit as issuing a certificate. Driven through the console's cookie + CSRF.

import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEdgeConfig } from '../../src/edge/config.js';
import type { Db } from '../../src/db/knex.js';
import { dimseServerDeps } from '../../src/deps.js';
import { startDimseServer, type DimseServer } from '../../src/dimse/server.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { raw } from '../helpers/dicomweb.js';
import { freePort } from '../helpers/dimse-tools.js';
import { ADMIN_PASSWORD, USER_PASSWORD } from '../helpers/fixtures.js';
import { SAMPLE_DIR } from '../helpers/samples.js';
import { startTestServer, tempDir, testPki, type TestServer } from '../helpers/http.js';

const run = promisify(execFile);
const SAMPLE = path.join(SAMPLE_DIR, 'CT_small.dcm');

let pki: Pki;
beforeAll(async () => {
  pki = await testPki();
});

describe.each(databasesUnderTest())('device bundle ZIP on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let dir: string;
  let work: string;
  let s: TestServer;
  let dimse: DimseServer;
  let adminToken: string;
  let dimsePort: number;

  async function browser(username: string, password: string): Promise<Record<string, string>> {
    const r = await s.request('POST', '/auth/session', { body: { username, password } });
    expect(r.status, r.text).toBe(200);
    return { cookie: String([r.headers['set-cookie']].flat()[0]).split(';')[0]!, 'x-csrf-token': r.body.csrfToken, origin: s.url };
  }

  async function unzipTo(zip: Buffer, name: string): Promise<string> {
    const d = path.join(work, name);
    await fs.mkdir(d);
    await fs.writeFile(path.join(d, 'bundle.zip'), zip);
    await run('unzip', ['-q', path.join(d, 'bundle.zip'), '-d', path.join(d, 'x')]);
    return path.join(d, 'x');
  }

  beforeAll(async () => {
    t = await dbu.open();
    dir = await tempDir();
    work = await tempDir('tresor-bundle-');
    dimsePort = await freePort();
    s = await startTestServer({ db: t.db, pki, dataDir: dir, adminPassword: ADMIN_PASSWORD, config: { host: '127.0.0.1', dimsePort } });
    dimse = await startDimseServer(dimseServerDeps(s.deps));
    adminToken = await s.login('admin', ADMIN_PASSWORD);
    for (const name of ['radiology', 'cardio']) expect((await s.request('POST', '/admin/departments', { token: adminToken, body: { name } })).status).toBe(201);
    for (const [username, department, role] of [['rad-admin', 'radiology', 'admin'], ['cardio-admin', 'cardio', 'admin'], ['rad-reader', 'radiology', 'reader']] as const) {
      expect((await s.request('POST', '/admin/users', { token: adminToken, body: { username, password: USER_PASSWORD, roles: [{ department, role }] } })).status).toBe(201);
    }
    expect((await s.request('POST', '/admin/devices', { token: adminToken, body: { aeTitle: 'CT_ROOM1', roles: [{ department: 'radiology', role: 'writer' }] } })).status).toBe(201);
  });
  afterAll(async () => {
    await dimse?.close();
    await s?.close();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rm(work, { recursive: true, force: true });
  });

  it('the unzipped bundle stores a file with storescu over TLS, unchanged', async () => {
    const headers = await browser('rad-admin', USER_PASSWORD);
    const r = await raw(s.url, s.ca, 'POST', '/admin/devices/CT_ROOM1/bundle', { headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ days: 30 }) });
    expect(r.status, r.text).toBe(200);
    expect(r.headers['content-type']).toBe('application/zip');
    expect(r.headers['content-disposition']).toBe('attachment; filename="CT_ROOM1-bundle.zip"');
    const x = await unzipTo(r.body, 'plain');
    expect((await fs.readdir(x)).sort()).toEqual(['CT_ROOM1.crt', 'CT_ROOM1.key', 'README.txt', 'orthanc.json', 'storescu.sh', 'tresor-ca.crt']);
    expect((await fs.stat(path.join(x, 'CT_ROOM1.key'))).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(path.join(x, 'tresor-ca.crt'), 'utf8')).toBe(s.ca);
    const orthanc = JSON.parse(await fs.readFile(path.join(x, 'orthanc.json'), 'utf8'));
    expect(orthanc.DicomModalities.tresor).toEqual({ AET: 'TRESOR', Host: '127.0.0.1', Port: dimsePort, UseDicomTls: true });
    expect(orthanc.DicomAet).toBe('CT_ROOM1');
    const readme = await fs.readFile(path.join(x, 'README.txt'), 'utf8');
    expect(readme).toContain(`storescu --aetitle 'CT_ROOM1' --call 'TRESOR' --enable-tls CT_ROOM1.key CT_ROOM1.crt --add-cert-file tresor-ca.crt '127.0.0.1' ${dimsePort}`);
    expect(readme).toContain('"DicomModalities"');

    // The script, as unzipped (its executable bit kept), from another directory.
    const sent = await run(path.join(x, 'storescu.sh'), [SAMPLE], { cwd: os.tmpdir() });
    expect(sent.stderr).not.toMatch(/E:/);
    const studies = await s.request('GET', '/dicomweb/studies', { token: adminToken, headers: { accept: 'application/dicom+json' } });
    expect(studies.status).toBe(200);
    expect(studies.body).toHaveLength(1);

    // Audited as a certificate issue; the key is in no log line.
    const audit = await s.request('GET', '/admin/audit?action=admin.device.certificate-issue', { token: adminToken });
    expect(audit.body.events[0]).toMatchObject({ principalName: 'rad-admin', outcome: 'success' });
    const key = await fs.readFile(path.join(x, 'CT_ROOM1.key'), 'utf8');
    const keyBody = key.split('\n')[1]!;
    expect(s.logs.filter((l) => l.includes(keyBody))).toEqual([]);
  });

  it('an edge bundle carries edge.json that `tresor edge` loads; bad edge settings issue nothing', async () => {
    const headers = { ...(await browser('rad-admin', USER_PASSWORD)), 'content-type': 'application/json' };
    const before = (await s.request('GET', '/admin/devices/CT_ROOM1', { token: adminToken })).body;
    const bad = await raw(s.url, s.ca, 'POST', '/admin/devices/CT_ROOM1/bundle', { headers, body: JSON.stringify({ edge: { listen: '0.0.0.0:11112' } }) });
    expect(bad.status, bad.text).toBe(400);
    expect(bad.json.error.code).toBe('bad-edge-settings');
    expect((await s.request('GET', '/admin/devices/CT_ROOM1', { token: adminToken })).body).toEqual(before);

    const r = await raw(s.url, s.ca, 'POST', '/admin/devices/CT_ROOM1/bundle', { headers, body: JSON.stringify({ edge: { listen: '0.0.0.0:11112', allow: ['10.0.0.7'] } }) });
    expect(r.status, r.text).toBe(200);
    const x = await unzipTo(r.body, 'edge');
    expect((await fs.readdir(x)).sort()).toEqual(['CT_ROOM1.crt', 'CT_ROOM1.key', 'edge.json', 'tresor-ca.crt']);
    const edge = await loadEdgeConfig(path.join(x, 'edge.json'));
    expect(edge.devices[0]).toMatchObject({ aeTitle: 'CT_ROOM1', allow: ['10.0.0.7'] });
    expect(edge.tresor).toMatchObject({ host: '127.0.0.1', port: dimsePort, aeTitle: 'TRESOR' });
  });

  it('the same authorization as issuing a certificate, and CSRF applies', async () => {
    const reader = await browser('rad-reader', USER_PASSWORD);
    expect([403, 404]).toContain((await raw(s.url, s.ca, 'POST', '/admin/devices/CT_ROOM1/bundle', { headers: reader })).status);
    const other = await browser('cardio-admin', USER_PASSWORD);
    expect((await raw(s.url, s.ca, 'POST', '/admin/devices/CT_ROOM1/bundle', { headers: other })).status).toBe(404);
    const admin = await browser('rad-admin', USER_PASSWORD);
    const noCsrf = await raw(s.url, s.ca, 'POST', '/admin/devices/CT_ROOM1/bundle', { headers: { cookie: admin.cookie! } });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.json.error.code).toBe('csrf');
  });
});

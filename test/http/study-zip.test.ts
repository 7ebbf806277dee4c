// GET /console/api/studies/{uid}/zip: the stored files byte for byte (unzipped with
// Info-ZIP `unzip` and compared by SHA-256), through the session cookie, department-scoped
// (another department's study and an unknown one are 404), audited as a retrieve.

import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { expectErrorBody } from '../helpers/error-body.js';
import { ADMIN_PASSWORD, USER_PASSWORD } from '../helpers/fixtures.js';
import { multipart, raw } from '../helpers/dicomweb.js';
import { freshUid, reissue } from '../helpers/dicomweb-data.js';
import { sha256 } from '../helpers/samples.js';
import { startTestServer, tempDir, testPki, type TestServer } from '../helpers/http.js';

const run = promisify(execFile);

let pki: Pki;
beforeAll(async () => {
  pki = await testPki();
});

describe.each(databasesUnderTest())('study ZIP on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let dir: string;
  let s: TestServer;
  let adminToken: string;
  const study = freshUid();
  const stored: { series: string; sop: string; sha: string }[] = [];

  async function cookieOf(username: string): Promise<string> {
    const r = await s.request('POST', '/auth/session', { body: { username, password: USER_PASSWORD } });
    expect(r.status, r.text).toBe(200);
    return String([r.headers['set-cookie']].flat()[0]).split(';')[0]!;
  }

  beforeAll(async () => {
    t = await dbu.open();
    dir = await tempDir();
    s = await startTestServer({ db: t.db, pki, dataDir: dir, adminPassword: ADMIN_PASSWORD });
    adminToken = await s.login('admin', ADMIN_PASSWORD);
    for (const name of ['cardio', 'neuro']) expect((await s.request('POST', '/admin/departments', { token: adminToken, body: { name } })).status).toBe(201);
    for (const [username, department] of [['rita', 'cardio'], ['ben', 'neuro']] as const) {
      expect((await s.request('POST', '/admin/users', { token: adminToken, body: { username, password: USER_PASSWORD, roles: [{ department, role: 'reader' }] } })).status).toBe(201);
    }
    const series2 = freshUid();
    const parts = [reissue('CT_small.dcm', { study }), reissue('MR_small.dcm', { study, series: series2 }), reissue('MR_small.dcm', { study, series: series2 })];
    const mp = multipart(parts.map((p) => ({ body: p.bytes })));
    const r = await raw(s.url, s.ca, 'POST', '/dicomweb/studies?department=cardio', { token: adminToken, headers: { 'content-type': mp.contentType, accept: 'application/dicom+json' }, body: mp.body });
    expect(r.status, r.text).toBe(200);
    for (const p of parts) stored.push({ series: p.series, sop: p.sop, sha: sha256(p.bytes) });
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('streams a ZIP of the stored files, byte-identical, with the cookie', async () => {
    const cookie = await cookieOf('rita');
    const r = await raw(s.url, s.ca, 'GET', `/console/api/studies/${study}/zip`, { headers: { cookie } });
    expect(r.status, r.text).toBe(200);
    expect(r.headers['content-type']).toBe('application/zip');
    expect(r.headers['content-disposition']).toBe(`attachment; filename="study-${study}.zip"`);
    expect(Number(r.headers['content-length'])).toBe(r.body.length);
    const out = await tempDir('tresor-zip-');
    try {
      await fs.writeFile(path.join(out, 'study.zip'), r.body);
      // -t: Info-ZIP checks every CRC; then extract and compare with what was sent.
      await run('unzip', ['-tq', path.join(out, 'study.zip')]);
      await run('unzip', ['-q', path.join(out, 'study.zip'), '-d', path.join(out, 'x')]);
      for (const st of stored) {
        const file = path.join(out, 'x', study, st.series, `${st.sop}.dcm`);
        expect(sha256(await fs.readFile(file)), file).toBe(st.sha);
      }
      const { stdout } = await run('unzip', ['-Z1', path.join(out, 'study.zip')]);
      expect(stdout.trim().split('\n')).toHaveLength(stored.length);
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
    const audit = await s.request('GET', '/admin/audit?action=retrieve', { token: adminToken });
    const row = audit.body.events.find((e: any) => e.principalName === 'rita' && e.details.resource === 'zip');
    expect(row).toMatchObject({ outcome: 'success', studyUids: [study], details: { via: 'console', instances: 3 } });
  });

  it('is 404 for another department, for an unknown study, and 401 without credentials', async () => {
    const cookie = await cookieOf('ben');
    expectErrorBody(await s.request('GET', `/console/api/studies/${study}/zip`, { headers: { cookie } }), 404, 'not-found');
    expectErrorBody(await s.request('GET', `/console/api/studies/${freshUid()}/zip`, { headers: { cookie: await cookieOf('rita') } }), 404, 'not-found');
    expectErrorBody(await s.request('GET', `/console/api/studies/${study}/zip`), 401);
    expectErrorBody(await s.request('GET', `/console/api/studies/not-a-uid/zip`, { token: adminToken }), 400);
  });
});

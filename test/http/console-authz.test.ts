// THE authorization matrix (helpers/authz-matrix.ts, ARCHITECTURE.md rule 10) through the
// console's door: every user principal logs in with POST /auth/session and acts with the
// cookie (+ X-CSRF-Token on writes): read = the study ZIP (200 or 404, never 403),
// write = STOW-RS, delete = DICOMweb DELETE. Same answers as the bearer door.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { AUTHZ_MATRIX, MATRIX_DEPARTMENTS, MATRIX_PRINCIPALS, type MatrixPrincipalName } from '../helpers/authz-matrix.js';
import { databasesUnderTest } from '../helpers/db.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { multipart, raw, startDicomwebServer, USER_PASSWORD, type DicomwebServer } from '../helpers/dicomweb.js';
import { testPki } from '../helpers/http.js';

describe.each(databasesUnderTest())('authorization matrix through the console cookie on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let pki: Pki;
  let s: DicomwebServer;
  const browsers = {} as Record<MatrixPrincipalName, Record<string, string>>;
  const seeded = {} as Record<(typeof MATRIX_DEPARTMENTS)[number], string>;

  const stow = (headers: Record<string, string>, bytes: Buffer, department: string) => {
    const m = multipart([{ body: bytes }]);
    return raw(s.url, s.ca, 'POST', `/dicomweb/studies?department=${department}`, { headers: { ...headers, 'content-type': m.contentType, accept: 'application/dicom+json' }, body: m.body });
  };

  beforeAll(async () => {
    t = await dbu.open();
    pki = await testPki();
    s = await startDicomwebServer({ db: t.db, pki });
    for (const d of MATRIX_DEPARTMENTS) await s.department(d);
    for (const [name, p] of Object.entries(MATRIX_PRINCIPALS) as [MatrixPrincipalName, (typeof MATRIX_PRINCIPALS)[MatrixPrincipalName]][]) {
      if (p.kind !== 'user') continue;
      await s.user(name, [...p.roles], p.globalAdmin);
      const r = await s.request('POST', '/auth/session', { body: { username: name, password: USER_PASSWORD } });
      expect(r.status, r.text).toBe(200);
      browsers[name] = { cookie: String([r.headers['set-cookie']].flat()[0]).split(';')[0]!, 'x-csrf-token': r.body.csrfToken, origin: s.url };
    }
    for (const d of MATRIX_DEPARTMENTS) {
      const x = reissue();
      expect((await stow({ authorization: `Bearer ${s.adminToken}` }, x.bytes, d)).status).toBe(200);
      seeded[d] = x.study;
    }
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
  });

  it('every user case of the matrix gives the same answer through the cookie', async () => {
    let ran = 0;
    for (const c of AUTHZ_MATRIX) {
      const headers = browsers[c.principal];
      if (!headers) continue; // devices have no browser session
      const label = `${c.principal} ${c.action} ${c.department}`;
      if (c.action === 'read') {
        const r = await raw(s.url, s.ca, 'GET', `/console/api/studies/${seeded[c.department]}/zip`, { headers: { cookie: headers.cookie! } });
        expect(r.status, label).toBe(c.expected ? 200 : 404);
      } else if (c.action === 'write') {
        const x = reissue();
        const r = await stow(headers, x.bytes, c.department);
        expect(r.status, `${label}: ${r.text}`).toBe(c.expected ? 200 : 409);
        expect((await t.db('instances').where({ sop_instance_uid: x.sop }).first()) !== undefined, label).toBe(c.expected);
      } else if (c.action === 'delete') {
        const x = reissue();
        expect((await stow({ authorization: `Bearer ${s.adminToken}` }, x.bytes, c.department)).status).toBe(200);
        const r = await raw(s.url, s.ca, 'DELETE', `/dicomweb/studies/${x.study}`, { headers });
        const canRead = AUTHZ_MATRIX.some((k) => k.principal === c.principal && k.action === 'read' && k.department === c.department && k.expected);
        expect(r.status, label).toBe(c.expected ? 204 : canRead ? 403 : 404);
        expect((await t.db('instances').where({ sop_instance_uid: x.sop }).first()) === undefined, label).toBe(c.expected);
      } else continue;
      ran++;
    }
    expect(ran).toBe(6 * 3 * 2);
  });
});

// Issue 5, security and robustness of the DICOMweb door over real HTTPS with the real
// app: the authorization matrix (read, write, delete), cross-department UID guessing on
// every route (the same 404 as a UID that does not exist; counts and Warning headers
// leak nothing), and bad input — malformed UIDs, Accept, multipart; a non-DICOM part; a
// boundary that never ends; 1 GB over the limit; slow clients — each a clear 4xx with
// nothing stored and the server still serving others.

import fs from 'node:fs/promises';
import net from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import tls from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import { buildApp } from '../../src/http/app.js';
import { httpsOptions } from '../../src/http/tls.js';
import { createLogger } from '../../src/log.js';
import type { Pki } from '../../src/pki/ca.js';
import { AUTHZ_MATRIX, MATRIX_DEPARTMENTS, MATRIX_PRINCIPALS, type MatrixPrincipalName } from '../helpers/authz-matrix.js';
import { allKeys } from '../helpers/core.js';
import { databasesUnderTest } from '../helpers/db.js';
import { reissue, zeros } from '../helpers/dicomweb-data.js';
import { multipart, parseMultipartResponse, raw, startDicomwebServer, upload, type DicomwebServer } from '../helpers/dicomweb.js';
import { testPki } from '../helpers/http.js';

const MiB = 1024 * 1024;
const LIMITS = { maxRequestBytes: 64 * MiB, maxObjectBytes: 32 * MiB, maxParts: 20 };

for (const dbu of databasesUnderTest()) {
  describe(`DICOMweb security on ${dbu.name}`, () => {
    let t: { db: Db; close(): Promise<void> };
    let pki: Pki;
    let s: DicomwebServer;
    const tokens = {} as Record<MatrixPrincipalName, string>;
    const dept = {} as Record<(typeof MATRIX_DEPARTMENTS)[number], number>;
    /** One study per department, stored by the global admin. */
    const seeded = {} as Record<(typeof MATRIX_DEPARTMENTS)[number], { study: string; series: string; sop: string }>;

    const stow = async (token: string, bytes: Buffer[], query = '') => {
      const m = multipart(bytes.map((body) => ({ body })));
      return raw(s.url, s.ca, 'POST', `/dicomweb/studies${query}`, { token, headers: { 'content-type': m.contentType, accept: 'application/dicom+json' }, body: m.body });
    };
    const counts = async () => ({
      instances: Number((await t.db('instances').count({ n: '*' }))[0].n),
      blobs: (await allKeys(s.store)).length,
      tmp: (await fs.readdir(s.core.tmpDir)).length,
    });

    beforeAll(async () => {
      t = await dbu.open();
      pki = await testPki();
      s = await startDicomwebServer({ db: t.db, pki, limits: LIMITS, stowIdleTimeoutMs: 1500 });
      for (const d of MATRIX_DEPARTMENTS) dept[d] = await s.department(d);
      for (const [name, p] of Object.entries(MATRIX_PRINCIPALS) as [MatrixPrincipalName, (typeof MATRIX_PRINCIPALS)[MatrixPrincipalName]][]) {
        if (p.kind === 'user') tokens[name] = await s.user(name, [...p.roles], p.globalAdmin);
      }
      for (const d of MATRIX_DEPARTMENTS) {
        const x = reissue('CT_small.dcm');
        const r = await stow(tokens['global-admin'], [x.bytes], `?department=${d}`);
        expect(r.status, r.text).toBe(200);
        seeded[d] = x;
      }
    });
    afterAll(async () => {
      await s?.close();
      await t?.close();
    });

    // ---- Authentication ----

    it('every DICOMweb route wants a bearer token in the header: 401 with WWW-Authenticate, never a token from the URL', async () => {
      const { study, series, sop } = seeded.radiology;
      for (const url of ['/dicomweb/studies', `/dicomweb/studies/${study}/metadata`, `/dicomweb/studies/${study}/series/${series}/instances/${sop}/frames/1`, `/dicomweb/wado?requestType=WADO&studyUID=${study}&seriesUID=${series}&objectUID=${sop}`]) {
        const r = await raw(s.url, s.ca, 'GET', url);
        expect(r.status, url).toBe(401);
        expect(r.headers['www-authenticate']).toMatch(/^Bearer /);
        const q = await raw(s.url, s.ca, 'GET', `${url}${url.includes('?') ? '&' : '?'}access_token=${tokens['global-admin']}`);
        expect(q.status, url).toBe(401);
      }
      expect((await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { headers: { authorization: 'Bearer not.a.token' } })).status).toBe(401);
      const m = multipart([{ body: reissue().bytes }]);
      expect((await raw(s.url, s.ca, 'POST', '/dicomweb/studies', { headers: { 'content-type': m.contentType }, body: m.body })).status).toBe(401);
    });

    // ---- The authorization matrix ----

    it('runs the authorization matrix through DICOMweb: read = metadata, write = STOW-RS, delete = DELETE', async () => {
      const notFoundBody = (await raw(s.url, s.ca, 'GET', '/dicomweb/studies/1.2.3.4.5.6.7/metadata', { token: tokens['global-admin'] })).text;
      for (const c of AUTHZ_MATRIX) {
        const token = tokens[c.principal];
        if (!token) continue; // devices do not log in over HTTPS
        const label = `${c.principal} ${c.action} ${c.department}`;
        if (c.action === 'read') {
          const r = await raw(s.url, s.ca, 'GET', `/dicomweb/studies/${seeded[c.department].study}/metadata`, { token });
          expect(r.status, label).toBe(c.expected ? 200 : 404);
          if (!c.expected) expect(r.text, label).toBe(notFoundBody);
        } else if (c.action === 'write') {
          const x = reissue();
          const r = await stow(token, [x.bytes], `?department=${c.department}`);
          if (c.expected) {
            expect(r.status, `${label}: ${r.text}`).toBe(200);
            expect(r.json['00081199'].Value[0]['00081155'].Value[0]).toBe(x.sop);
          } else {
            expect(r.status, `${label}: ${r.text}`).toBe(409);
            expect(r.json['00081198'].Value[0]['00081197'].Value[0], label).toBe(0x0124);
            expect(await t.db('instances').where({ sop_instance_uid: x.sop }).first()).toBeUndefined();
          }
        } else if (c.action === 'delete') {
          const x = reissue();
          expect((await stow(tokens['global-admin'], [x.bytes], `?department=${c.department}`)).status).toBe(200);
          const r = await raw(s.url, s.ca, 'DELETE', `/dicomweb/studies/${x.study}`, { token });
          const canRead = AUTHZ_MATRIX.some((k) => k.principal === c.principal && k.action === 'read' && k.department === c.department && k.expected);
          expect(r.status, label).toBe(c.expected ? 204 : canRead ? 403 : 404);
          const row = await t.db('instances').where({ sop_instance_uid: x.sop }).first();
          expect(row === undefined, label).toBe(c.expected);
        }
      }
    });

    it('DELETE removes rows and blobs together, at every level, and is audited', async () => {
      const a = reissue();
      const b = reissue('CT_small.dcm', { study: a.study, series: a.series });
      const c = reissue('MR_small.dcm', { study: a.study });
      const admin = tokens['cardiology-admin'];
      expect((await stow(admin, [a.bytes, b.bytes, c.bytes])).status).toBe(200);
      const before = await counts();
      const base = `/dicomweb/studies/${a.study}`;
      expect((await raw(s.url, s.ca, 'DELETE', `${base}/series/${a.series}/instances/${a.sop}`, { token: admin })).status).toBe(204);
      expect((await raw(s.url, s.ca, 'DELETE', `${base}/series/${a.series}/instances/${a.sop}`, { token: admin })).status).toBe(404);
      expect((await counts()).instances).toBe(before.instances - 1);
      expect((await counts()).blobs).toBe(before.blobs - 1);
      expect((await raw(s.url, s.ca, 'DELETE', `${base}/series/${a.series}`, { token: admin })).status).toBe(204);
      expect(await t.db('series').where({ series_uid: a.series }).first()).toBeUndefined();
      expect((await raw(s.url, s.ca, 'GET', `${base}/metadata`, { token: admin })).status).toBe(200);
      expect((await raw(s.url, s.ca, 'DELETE', base, { token: admin })).status).toBe(204);
      expect(await t.db('studies').where({ study_uid: a.study }).first()).toBeUndefined();
      const after = await counts();
      expect(after.instances).toBe(before.instances - 3);
      expect(after.blobs).toBe(before.blobs - 3);
      // A series named under another study is not that study's.
      expect((await raw(s.url, s.ca, 'DELETE', `/dicomweb/studies/${seeded.cardiology.study}/series/${seeded.radiology.series}`, { token: tokens['global-admin'] })).status).toBe(404);
      const events = await s.audit.list({ action: 'delete', studyUid: a.study });
      expect(events.filter((e) => e.outcome === 'success').length).toBe(3);
      expect(JSON.stringify(events)).not.toContain('objects/'); // object keys are never shown
    });

    // ---- Cross-department guessing ----

    it('another department’s UIDs answer exactly like UIDs that do not exist, on every route', async () => {
      const token = tokens['cardiology-reader']; // reads cardiology only
      const real = seeded.radiology;
      const fake = { study: '1.2.826.0.1.3680043.99.1', series: '1.2.826.0.1.3680043.99.2', sop: '1.2.826.0.1.3680043.99.3' };
      const routes = (u: typeof real): [string, string, Record<string, string>][] => {
        const inst = `/dicomweb/studies/${u.study}/series/${u.series}/instances/${u.sop}`;
        const any = { accept: '*/*' };
        return [
          ['GET', `/dicomweb/studies/${u.study}`, { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' }],
          ['GET', `/dicomweb/studies/${u.study}/series/${u.series}`, any],
          ['GET', inst, any],
          ['GET', `/dicomweb/studies/${u.study}/metadata`, any],
          ['GET', `/dicomweb/studies/${u.study}/series/${u.series}/metadata`, any],
          ['GET', `${inst}/metadata`, any],
          ['GET', `${inst}/frames/1`, any],
          ['GET', `${inst}/bulkdata/7FE00010`, any],
          ['GET', `${inst}/rendered`, any],
          ['GET', `${inst}/thumbnail`, any],
          ['GET', `${inst}/frames/1/rendered`, any],
          ['GET', `/dicomweb/wado?requestType=WADO&studyUID=${u.study}&seriesUID=${u.series}&objectUID=${u.sop}&contentType=application%2Fdicom`, any],
          ['GET', `/dicomweb/wado?requestType=WADO&studyUID=${u.study}&seriesUID=${u.series}&objectUID=${u.sop}`, any],
          ['DELETE', inst, any],
          ['DELETE', `/dicomweb/studies/${u.study}/series/${u.series}`, any],
          ['DELETE', `/dicomweb/studies/${u.study}`, any],
        ];
      };
      const realRoutes = routes(real);
      const fakeRoutes = routes(fake);
      for (let i = 0; i < realRoutes.length; i++) {
        const [method, url, headers] = realRoutes[i];
        const a = await raw(s.url, s.ca, method, url, { token, headers });
        const b = await raw(s.url, s.ca, fakeRoutes[i][0], fakeRoutes[i][1], { token, headers });
        expect(a.status, url).toBe(404);
        expect(a.text, url).toBe(b.text);
        expect(Object.keys(a.headers).sort(), url).toEqual(Object.keys(b.headers).sort());
      }
      // QIDO: the same empty answer, no Warning, for a real other-department study and a fake one.
      for (const q of ['/studies?StudyInstanceUID=%s', '/studies/%s/series', '/studies/%s/instances', `/studies/%s/series/${real.series}/instances`, '/series?StudyInstanceUID=%s', '/instances?StudyInstanceUID=%s']) {
        const a = await raw(s.url, s.ca, 'GET', `/dicomweb${q.replace('%s', real.study)}`, { token, headers: { accept: 'application/dicom+json' } });
        const b = await raw(s.url, s.ca, 'GET', `/dicomweb${q.replace('%s', fake.study)}`, { token, headers: { accept: 'application/dicom+json' } });
        expect([a.status, a.text, a.headers.warning], q).toEqual([200, '[]', undefined]);
        expect([b.status, b.text, b.headers.warning], q).toEqual([200, '[]', undefined]);
      }
      // Nothing was deleted.
      expect(await t.db('instances').where({ sop_instance_uid: real.sop }).first()).toBeDefined();
    });

    it('result counts and the truncation Warning only ever reflect the caller’s departments', async () => {
      // Cardiology has many studies by now; radiology gets exactly two here.
      const onlyTwo = await startDepartmentWithStudies(2);
      const r = await raw(s.url, s.ca, 'GET', '/dicomweb/studies?limit=2', { token: onlyTwo.token, headers: { accept: 'application/dicom+json' } });
      expect(r.status).toBe(200);
      expect(r.json.length).toBe(2);
      expect(r.headers.warning).toBeUndefined();
      const one = await raw(s.url, s.ca, 'GET', '/dicomweb/studies?limit=1', { token: onlyTwo.token, headers: { accept: 'application/dicom+json' } });
      expect(one.headers.warning).toMatch(/^299 /);
      const all = await raw(s.url, s.ca, 'GET', '/dicomweb/studies?limit=2', { token: tokens['global-admin'], headers: { accept: 'application/dicom+json' } });
      expect(all.headers.warning).toMatch(/^299 /);
      const counted = await raw(s.url, s.ca, 'GET', '/dicomweb/studies?includefield=NumberOfStudyRelatedInstances', { token: onlyTwo.token, headers: { accept: 'application/dicom+json' } });
      for (const m of counted.json) expect(m['00201208'].Value[0]).toBe(1);
    });

    async function startDepartmentWithStudies(n: number): Promise<{ token: string }> {
      const name = `isolated-${Date.now()}`;
      await s.department(name);
      const writer = await s.user(`${name}-w`, [{ department: name, role: 'writer' }]);
      for (let i = 0; i < n; i++) expect((await stow(writer, [reissue().bytes])).status).toBe(200);
      return { token: await s.user(`${name}-r`, [{ department: name, role: 'reader' }]) };
    }

    // ---- Bad input ----

    it('malformed UIDs are 400 on every route: path traversal, SQL-ish characters, wildcards, too long', async () => {
      const token = tokens['global-admin'];
      const bad = ['..%2F..%2Fetc%2Fpasswd', '1.2.3%27%3B%20DROP%20TABLE%20studies%3B--', '1.2.3%00', '1.2.*', `1.${'2'.repeat(64)}`, '1..2', '%2E%2E', '1.2.3%20OR%201%3D1'];
      const ok = seeded.radiology;
      for (const b of bad) {
        for (const [method, url] of [
          ['GET', `/dicomweb/studies/${b}`],
          ['GET', `/dicomweb/studies/${b}/metadata`],
          ['GET', `/dicomweb/studies/${ok.study}/series/${b}/metadata`],
          ['GET', `/dicomweb/studies/${ok.study}/series/${ok.series}/instances/${b}/frames/1`],
          ['GET', `/dicomweb/studies/${b}/series`],
          ['DELETE', `/dicomweb/studies/${b}`],
          ['GET', `/dicomweb/wado?requestType=WADO&studyUID=${b}&seriesUID=${ok.series}&objectUID=${ok.sop}`],
        ]) {
          const r = await raw(s.url, s.ca, method, url, { token, headers: { accept: '*/*' } });
          expect([400, 404], `${method} ${url}`).toContain(r.status);
          if (r.status === 404) expect(b, url).toMatch(/%2F|%2E%2E/); // no route matches a path with a slash in it
          expect(r.text).not.toMatch(/DROP|passwd|stack|at \//);
        }
      }
      const r = await raw(s.url, s.ca, 'GET', `/dicomweb/studies?StudyInstanceUID=${encodeURIComponent("1' OR '1'='1")}`, { token, headers: { accept: 'application/dicom+json' } });
      expect([200, 400]).toContain(r.status);
      if (r.status === 200) expect(r.json).toEqual([]);
      expect((await raw(s.url, s.ca, 'GET', '/dicomweb/studies?PatientName=%25%27%3B--', { token, headers: { accept: 'application/dicom+json' } })).json).toEqual([]);
    });

    it('unsupported or malformed Accept: 406 or 400, with the uniform error body', async () => {
      const token = tokens['global-admin'];
      const { study, series, sop } = seeded.radiology;
      const inst = `/dicomweb/studies/${study}/series/${series}/instances/${sop}`;
      for (const [url, accept, status] of [
        [inst, 'multipart/related; type="image/gif"', 406],
        [inst, 'application/zip', 406],
        [inst, 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.100', 406],
        [`${inst}/metadata`, 'application/xml', 406],
        [`${inst}/frames/1`, 'image/png', 406],
        [`${inst}/rendered`, 'video/mpeg', 406],
        [inst, 'multipart/related; type="application/dicom"; transfer-syntax=*; transfer-syntax=*', 400],
        [inst, 'not a media type', 400],
      ] as const) {
        const r = await raw(s.url, s.ca, 'GET', url, { token, headers: { accept } });
        expect(r.status, accept).toBe(status);
        expect(Object.keys(r.json), accept).toEqual(['error']);
      }
    });

    it('STOW-RS refuses garbage, truncated multipart, non-DICOM parts and wrong content types; nothing is stored', async () => {
      const token = tokens['cardiology-writer'];
      const before = await counts();
      const good = reissue();
      const m = multipart([{ body: good.bytes }]);
      const cases: [string, Record<string, string>, Buffer | string, number][] = [
        ['garbage', { 'content-type': 'multipart/related; type="application/dicom"; boundary=xyz' }, 'this is not multipart at all', 400],
        ['truncated', { 'content-type': m.contentType }, m.body.subarray(0, m.body.length - 4000), 400],
        ['no closing delimiter', { 'content-type': m.contentType }, m.body.subarray(0, m.body.length - 30), 400],
        ['bad boundary', { 'content-type': 'multipart/related; type="application/dicom"; boundary=' }, m.body, 400],
        ['json', { 'content-type': 'application/json' }, '{}', 415],
        ['dicom+json type', { 'content-type': 'multipart/related; type="application/dicom+json"; boundary=test-boundary-1234567890' }, m.body, 415],
        ['form-data', { 'content-type': 'multipart/form-data; boundary=test-boundary-1234567890' }, m.body, 415],
        // CVE-2022-24434: a header line starting with a space crashed the original dicer.
        // @fastify/busboy's Dicer parses it; the part is then simply not DICOM (409, 0xC000).
        ['CVE-2022-24434 header', { 'content-type': m.contentType }, `--test-boundary-1234567890\r\n Content-Type: application/dicom\r\n\r\nxx\r\n--test-boundary-1234567890--\r\n`, 409],
        ['empty', { 'content-type': m.contentType }, '--test-boundary-1234567890--\r\n', 400],
      ];
      for (const [label, headers, body, status] of cases) {
        const r = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token, headers: { ...headers, accept: 'application/dicom+json' }, body });
        expect(r.status, `${label}: ${r.text}`).toBe(status);
      }
      // A part that is not DICOM, and a DICOM part that is not a DICOM object.
      for (const part of [{ body: Buffer.from('hello'), contentType: 'text/plain' }, { body: Buffer.from('not a DICOM object at all') }]) {
        const mp = multipart([part]);
        const r = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': mp.contentType, accept: 'application/dicom+json' }, body: mp.body });
        expect(r.status).toBe(409);
        expect(r.json['0008119A'].Value[0]['00081197'].Value[0]).toBe(0xc000);
      }
      // One good part and one bad: 202, the good one stored and named, the bad one reported.
      const mixed = multipart([{ body: good.bytes }, { body: Buffer.from('garbage') }]);
      const r = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': mixed.contentType, accept: 'application/dicom+json' }, body: mixed.body });
      expect(r.status).toBe(202);
      expect(r.json['00081199'].Value[0]['00081155'].Value[0]).toBe(good.sop);
      expect(r.json['0008119A'].Value.length).toBe(1);
      // POST /studies/{study} stores only that study's instances (PS3.18 §10.5.1).
      const other = reissue();
      const wrongStudy = multipart([{ body: other.bytes }]);
      const w = await raw(s.url, s.ca, 'POST', `/dicomweb/studies/${good.study}`, { token, headers: { 'content-type': wrongStudy.contentType, accept: 'application/dicom+json' }, body: wrongStudy.body });
      expect(w.status).toBe(409);
      expect(w.json['00081198'].Value[0]['00081197'].Value[0]).toBe(0xa900);
      const after = await counts();
      expect(after.instances).toBe(before.instances + 1);
      expect(after.blobs).toBe(before.blobs + 1);
      expect(after.tmp).toBe(0);
      expect((await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token: tokens['global-admin'], headers: { accept: 'application/dicom+json' } })).status).toBe(200);
    });

    it('limits: too many parts, a part that never ends, and 1 GB over the limit are cut off with 413; memory stays flat; nothing is stored', async () => {
      const token = tokens['cardiology-writer'];
      const before = await counts();
      const many = multipart(Array.from({ length: LIMITS.maxParts + 1 }, () => ({ body: Buffer.from('x') })));
      const tooMany = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': many.contentType, accept: 'application/dicom+json' }, body: many.body });
      expect(tooMany.status).toBe(413);
      expect(tooMany.json.error.code).toBe('too-many-parts');

      const head = Buffer.from('--b0undary\r\nContent-Type: application/dicom\r\n\r\n');
      const ct = 'multipart/related; type="application/dicom"; boundary=b0undary';
      // Declared too large: refused before a byte of the body is read.
      const declared = await upload(s.url, s.ca, '/dicomweb/studies', { token, headers: { 'content-type': ct, 'content-length': String(1024 * MiB) }, body: zeros(1024 * MiB, head) });
      expect(declared.status).toBe(413);
      expect(declared.sentBytes).toBeLessThan(64 * MiB);

      // Chunked, 1 GB, one part whose boundary never comes: cut at maxObjectBytes.
      const rss0 = process.memoryUsage().rss;
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      const started = Date.now();
      const big = await upload(s.url, s.ca, '/dicomweb/studies', { token, headers: { 'content-type': ct }, body: zeros(1024 * MiB, head) });
      clearInterval(sampler);
      expect(big.status).toBe(413);
      expect(JSON.parse(big.text).error.code).toBe('object-too-large');
      expect(big.sentBytes).toBeLessThan(256 * MiB);
      expect(Date.now() - started).toBeLessThan(30_000);
      // Server and client share this process: growth covers both, and must stay small.
      expect(peak - rss0).toBeLessThan(200 * MiB);

      // Many parts each under the object limit, together over the request limit.
      const parts = new PassThrough();
      const total = upload(s.url, s.ca, '/dicomweb/studies', { token, headers: { 'content-type': ct }, body: parts });
      void (async () => {
        for (let i = 0; i < 5 && !parts.destroyed; i++) {
          parts.write(i === 0 ? head : Buffer.from('\r\n--b0undary\r\nContent-Type: application/dicom\r\n\r\n'));
          for (let k = 0; k < 20 && !parts.destroyed; k++) if (!parts.write(Buffer.alloc(MiB))) await new Promise((r) => parts.once('drain', r));
        }
        parts.end('\r\n--b0undary--\r\n');
      })().catch(() => undefined);
      const tr = await total;
      expect(tr.status).toBe(413);
      expect(JSON.parse(tr.text).error.code).toBe('request-too-large');

      const after = await counts();
      expect(after).toEqual(before);
      // Still serving.
      expect((await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token: tokens['global-admin'], headers: { accept: 'application/dicom+json' } })).status).toBe(200);
    }, 120_000);

    it('a STOW-RS body that stalls gets 408 after the idle timeout; other clients are served meanwhile', async () => {
      const token = tokens['cardiology-writer'];
      const before = await counts();
      const body = new PassThrough();
      const x = reissue();
      const m = multipart([{ body: x.bytes }]);
      body.write(m.body.subarray(0, 1000)); // then nothing
      const started = Date.now();
      const stalled = upload(s.url, s.ca, '/dicomweb/studies', { token, headers: { 'content-type': m.contentType }, body });
      const other = await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token: tokens['global-admin'], headers: { accept: 'application/dicom+json' } });
      expect(other.status).toBe(200);
      const r = await stalled;
      expect(r.status).toBe(408);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await counts()).toEqual(before);
    });

    describe('with the server timeouts the report asks app.ts for', () => {
      let app2: FastifyInstance;
      let url2: string;
      beforeAll(async () => {
        app2 = await buildApp(
          {
            ...s.deps,
            logger: createLogger('silent'),
            query: { ...s.deps.query, search: async () => ({ matches: [], truncated: false }) },
            deletion: { delete: async () => ({ studyUid: '', instances: 0, blobFailures: 0 }) },
            tuning: { stowIdleTimeoutMs: 60_000 },
          },
          // https.createServer takes http.Server options too: the interval at which Node
          // checks headersTimeout/requestTimeout can only be set when the server is made.
          { https: { ...httpsOptions(pki), connectionsCheckingInterval: 250 } as never },
        );
        await app2.listen({ host: '127.0.0.1', port: 0 });
        // What app.ts should configure (Fastify's requestTimeout; Node's headersTimeout).
        app2.server.headersTimeout = 2000;
        app2.server.requestTimeout = 4000;
        url2 = `https://127.0.0.1:${(app2.server.address() as net.AddressInfo).port}`;
      });
      afterAll(async () => {
        await app2?.close();
      });

      const slowSocket = () =>
        new Promise<tls.TLSSocket>((resolve, reject) => {
          const u = new URL(url2);
          const sock = tls.connect({ host: u.hostname, port: Number(u.port), ca: s.ca, servername: 'localhost', checkServerIdentity: () => undefined }, () => resolve(sock));
          sock.on('error', reject);
        });
      const readAll = (sock: tls.TLSSocket) =>
        new Promise<string>((resolve) => {
          let text = '';
          sock.on('data', (c) => (text += c.toString('latin1')));
          sock.on('close', () => resolve(text));
          sock.on('error', () => resolve(text));
        });

      it('slowloris headers: one header byte a second is answered 408 after headersTimeout, while others are served', async () => {
        const sock = await slowSocket();
        const answer = readAll(sock);
        const started = Date.now();
        sock.write('GET /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        const drip = setInterval(() => {
          if (!sock.destroyed) sock.write('X');
        }, 500);
        const ok = await raw(url2, s.ca, 'GET', '/dicomweb/studies', { token: tokens['global-admin'], headers: { accept: 'application/dicom+json' } });
        expect(ok.status).toBe(200);
        const text = await answer;
        clearInterval(drip);
        expect(text).toMatch(/^HTTP\/1\.1 408 /);
        expect(Date.now() - started).toBeLessThan(8000);
      });

      it('slow body: a STOW-RS upload trickling bytes under the idle timeout is cut at requestTimeout with 408', async () => {
        const before = await counts();
        const x = reissue();
        const m = multipart([{ body: x.bytes }]);
        const body = new Readable({ read() {} });
        let i = 0;
        const drip = setInterval(() => body.push(m.body.subarray(i, (i += 16))), 200);
        const started = Date.now();
        const r = await upload(url2, s.ca, '/dicomweb/studies', { token: tokens['cardiology-writer'], headers: { 'content-type': m.contentType, 'content-length': String(m.body.length) }, body }).catch((e) => ({ status: 0, error: e }));
        clearInterval(drip);
        expect(r.status).toBe(408);
        expect(Date.now() - started).toBeLessThan(10_000);
        expect(await counts()).toEqual(before);
      });
    });

    it('a blob missing behind its row: 503 before the first byte, a cut response after it, and the server keeps serving', async () => {
      const token = tokens['global-admin'];
      const a = reissue();
      const b = reissue('CT_small.dcm', { study: a.study, series: a.series });
      expect((await stow(token, [a.bytes, b.bytes], '?department=radiology')).status).toBe(200);
      const keyOf = async (sop: string) => String((await t.db('instances').select('object_key').where({ sop_instance_uid: sop }).first()).object_key);
      const [ka, kb] = [await keyOf(a.sop), await keyOf(b.sop)];
      const accept = { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' };
      // Which one streams first follows the index order (instance number, then UID).
      const series = `/dicomweb/studies/${a.study}/series/${a.series}`;
      const whole = await raw(s.url, s.ca, 'GET', series, { token, headers: accept });
      const order = parseMultipartResponse(whole.headers['content-type'], whole.body).map((p) => (p.body.equals(a.bytes) ? 'a' : 'b'));
      await s.store.delete(order[1] === 'a' ? ka : kb);
      const cut = await raw(s.url, s.ca, 'GET', series, { token, headers: accept }).then(
        (r) => r.body.length < Number(r.headers['content-length']),
        () => true,
      );
      expect(cut).toBe(true);
      const gone = order[1] === 'a' ? a : b;
      const single = await raw(s.url, s.ca, 'GET', `${series}/instances/${gone.sop}`, { token, headers: accept });
      expect(single.status).toBe(503);
      expect(single.json.error.code).toBe('blob-missing');
      expect(s.logs.some((l) => l.includes('stored object missing'))).toBe(true);
      expect((await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token, headers: { accept: 'application/dicom+json' } })).status).toBe(200);
      await t.db('instances').where({ sop_instance_uid: gone.sop }).del();
    });

    it('the audit trail and the logs name refusals without patient data', async () => {
      // A search by patient name: the name travels in the query string.
      const q = await raw(s.url, s.ca, 'GET', '/dicomweb/studies?PatientName=CompressedSamples*&PatientID=1CT1', { token: tokens['global-admin'], headers: { accept: 'application/dicom+json' } });
      expect(q.status).toBe(200);
      expect(q.json.length).toBeGreaterThan(0);
      const logs = s.logs.join('\n');
      expect(logs).toContain('/dicomweb/studies');
      for (const needle of ['CompressedSamples', 'PatientName=', '1CT1', tokens['global-admin']]) expect(logs).not.toContain(needle);
      const rows = await s.audit.list({ limit: 10_000 });
      const text = JSON.stringify(rows);
      for (const needle of ['CompressedSamples', '1CT1']) expect(text).not.toContain(needle);
      expect(rows.some((r) => r.action === 'retrieve' && r.outcome === 'failure')).toBe(true);
      expect(rows.some((r) => r.action === 'store' && r.outcome === 'denied')).toBe(true);
      expect(rows.some((r) => r.action === 'query')).toBe(true);
    });
  });
}

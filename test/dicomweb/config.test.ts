// DICOMweb under other configurations: OHIF on another origin (CORS preflight with the
// Authorization header), links built from the configured public URL and never from
// Host, and the S3 blob store (retrieval and frames stream from it the same way).

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { createS3BlobStore } from '../../src/storage/s3-store.js';
import { allKeys } from '../helpers/core.js';
import { databasesUnderTest } from '../helpers/db.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { multipart, parseMultipartResponse, raw, startDicomwebServer, type DicomwebServer } from '../helpers/dicomweb.js';
import { tempDir, testPki } from '../helpers/http.js';
import { startS3Server } from '../helpers/s3-server.js';
import { SAMPLE_DIR, sha256 } from '../helpers/samples.js';

const dbu = databasesUnderTest()[0];
const ORIGIN = 'https://ohif.example';

let pki: Pki;
beforeAll(async () => {
  pki = await testPki();
});

async function stowFile(s: DicomwebServer, token: string, body: Buffer) {
  const m = multipart([{ body }]);
  return raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': m.contentType, accept: 'application/dicom+json' }, body: m.body });
}

describe('DICOMweb for a viewer on another origin, with a public URL', () => {
  let t: { db: Db; close(): Promise<void> };
  let s: DicomwebServer;
  let token: string;
  let x: ReturnType<typeof reissue>;

  beforeAll(async () => {
    t = await dbu.open();
    s = await startDicomwebServer({ db: t.db, pki, corsOrigins: [ORIGIN], publicUrl: 'https://pacs.example.org:8443' });
    await s.department('radiology');
    token = await s.user('ohif-user', [{ department: 'radiology', role: 'admin' }]);
    x = reissue();
    expect((await stowFile(s, token, x.bytes)).status).toBe(200);
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
  });

  it('answers the CORS preflight for the Authorization header, and the request itself, for the configured origin only', async () => {
    const pre = await raw(s.url, s.ca, 'OPTIONS', '/dicomweb/studies', {
      headers: { origin: ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,accept' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(String(pre.headers['access-control-allow-headers']).toLowerCase()).toContain('authorization');
    const get = await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token, headers: { origin: ORIGIN, accept: 'application/dicom+json' } });
    expect(get.status).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBe(ORIGIN);
    const other = await raw(s.url, s.ca, 'OPTIONS', '/dicomweb/studies', {
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('builds RetrieveURL and BulkDataURI from the public URL, whatever Host says', async () => {
    const headers = { accept: 'application/dicom+json', host: 'evil.example' };
    const q = await raw(s.url, s.ca, 'GET', `/dicomweb/studies?StudyInstanceUID=${x.study}`, { token, headers });
    expect(q.json[0]['00081190'].Value[0]).toBe(`https://pacs.example.org:8443/dicomweb/studies/${x.study}`);
    const md = await raw(s.url, s.ca, 'GET', `/dicomweb/studies/${x.study}/metadata`, { token, headers });
    expect(md.json[0]['7FE00010'].BulkDataURI).toBe(`https://pacs.example.org:8443/dicomweb/studies/${x.study}/series/${x.series}/instances/${x.sop}/bulkdata/7FE00010`);
    expect(md.text).not.toContain('evil.example');
    const m = multipart([{ body: reissue().bytes }]);
    const st = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token, headers: { ...headers, 'content-type': m.contentType }, body: m.body });
    expect(st.json['00081199'].Value[0]['00081190'].Value[0]).toMatch(/^https:\/\/pacs\.example\.org:8443\/dicomweb\/studies\//);
  });
});

describe('DICOMweb on the S3 blob store', () => {
  let t: { db: Db; close(): Promise<void> };
  let s: DicomwebServer;
  let s3: Awaited<ReturnType<typeof startS3Server>>;
  let store: Awaited<ReturnType<typeof createS3BlobStore>>;
  let spool: string;
  let token: string;

  beforeAll(async () => {
    t = await dbu.open();
    s3 = await startS3Server();
    spool = await tempDir('tresor-spool-');
    store = await createS3BlobStore(s3.config, { spoolDir: spool });
    s = await startDicomwebServer({ db: t.db, pki, store });
    await s.department('radiology');
    token = await s.user('s3-admin', [{ department: 'radiology', role: 'admin' }]);
  });
  afterAll(async () => {
    await s?.close();
    await store?.close();
    await s3?.stop();
    await t?.close();
    await fs.rm(spool, { recursive: true, force: true });
  });

  it('stores, retrieves byte-identical, serves frames of a multi-frame RLE object, and deletes rows and objects', async () => {
    for (const name of ['CT_small.dcm', 'rtdose_rle.dcm', 'JPEG2000.dcm']) {
      const bytes = await fs.readFile(path.join(SAMPLE_DIR, name));
      const r = await stowFile(s, token, bytes);
      expect(r.status, r.text).toBe(200);
      const url = r.json['00081199'].Value[0]['00081190'].Value[0] as string;
      const got = await raw(s.url, s.ca, 'GET', url, { token, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
      expect(sha256(parseMultipartResponse(got.headers['content-type'], got.body)[0].body), name).toBe(sha256(bytes));
      if (name === 'rtdose_rle.dcm') {
        const f = await raw(s.url, s.ca, 'GET', `${url}/frames/15,1`, { token, headers: { accept: 'multipart/related; type="image/dicom-rle"' } });
        expect(f.status).toBe(200);
        const parts = parseMultipartResponse(f.headers['content-type'], f.body);
        expect(parts.length).toBe(2);
        // RLE frames start with their 64-byte header: the segment count (here 4 for 32-bit).
        for (const p of parts) expect(p.body.readUInt32LE(0)).toBe(4);
      }
    }
    expect((await allKeys(store)).length).toBe(3);
    const studies = (await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token, headers: { accept: 'application/dicom+json' } })).json as any[];
    for (const st of studies) expect((await raw(s.url, s.ca, 'DELETE', `/dicomweb/studies/${st['0020000D'].Value[0]}`, { token })).status).toBe(204);
    expect((await allKeys(store)).length).toBe(0);
    expect(Number((await t.db('instances').count({ n: '*' }))[0].n)).toBe(0);
  });
});

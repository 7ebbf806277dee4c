// Issue 9, "DICOMweb details found with OHIF in Chromium": what OHIF 3.13 tripped over,
// over real HTTPS with the real app on every pydicom sample — QIDO results without
// empty attributes that viewers dereference, comma-separated value lists, and /metadata
// that follows PS3.18 F.2 to the letter.

import fs from 'node:fs';
import path from 'node:path';
import dcmjs from '../../src/core/dicom/dcmjs.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silenceDcmjs } from '../../src/core/dicom/dcmjs-quiet.js';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { multipart, raw, startDicomwebServer, type DicomwebServer } from '../helpers/dicomweb.js';
import { testPki } from '../helpers/http.js';
import { BROKEN_SAMPLES, sampleFiles } from '../helpers/samples.js';

silenceDcmjs(dcmjs);

interface Sample {
  name: string;
  bytes: Buffer;
  study: string;
  series: string;
  sop: string;
  modality: string;
}

function readSample(file: string): Sample | null {
  const bytes = fs.readFileSync(file);
  try {
    const d = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), { ignoreErrors: true });
    const s = (t: string) => String(d.dict[t]?.Value?.[0] ?? '').replace(/\0/g, '').trim();
    return { name: path.basename(file), bytes, study: s('0020000D'), series: s('0020000E'), sop: s('00080018'), modality: s('00080060') };
  } catch {
    return null;
  }
}

const samples = sampleFiles()
  .filter((f) => !BROKEN_SAMPLES[path.basename(f)])
  .map(readSample)
  .filter((x): x is Sample => x !== null);

/**
 * OHIF 3.13.2's study-list mapping (extensions/default/src/DicomWebDataSource/qido.js,
 * getModalities), transcribed: it reads ModalitiesInStudy.Value.length whenever the
 * attribute is present, which is what crashed the list.
 */
function ohifGetModalities(Modality: any, ModalitiesInStudy: any): unknown {
  if (!Modality && !ModalitiesInStudy) return {};
  const modalities = Modality || { vr: 'CS', Value: [] };
  if (ModalitiesInStudy) {
    if (modalities.vr && modalities.vr === ModalitiesInStudy.vr) {
      for (let i = 0; i < ModalitiesInStudy.Value.length; i++) {
        const value = ModalitiesInStudy.Value[i];
        if (modalities.Value.indexOf(value) === -1) modalities.Value.push(value);
      }
    } else return ModalitiesInStudy;
  }
  return modalities;
}

const F2_NUMBER_VRS = new Set(['DS', 'FL', 'FD', 'IS', 'SL', 'SS', 'UL', 'US']);
const F2_VRS = new Set('AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV'.split(' '));

/** Every way a data set breaks PS3.18 F.2 (F.2.2 attribute objects, F.2.3 value types, F.2.5 empty values), as "tag: reason". */
function f2Violations(ds: Record<string, any>, where = ''): string[] {
  const out: string[] = [];
  for (const [tag, el] of Object.entries(ds)) {
    const at = `${where}${tag}`;
    if (!/^[0-9A-F]{8}$/.test(tag)) out.push(`${at}: key is not 8 upper-case hex digits`);
    if (!el || typeof el !== 'object' || !F2_VRS.has(el.vr)) {
      out.push(`${at}: no valid vr`);
      continue;
    }
    const extra = Object.keys(el).filter((k) => !['vr', 'Value', 'BulkDataURI', 'InlineBinary'].includes(k));
    if (extra.length) out.push(`${at}: unknown members ${extra.join(',')}`);
    if (['Value', 'BulkDataURI', 'InlineBinary'].filter((k) => k in el).length > 1) out.push(`${at}: more than one of Value/BulkDataURI/InlineBinary`);
    if ('BulkDataURI' in el && (typeof el.BulkDataURI !== 'string' || !el.BulkDataURI)) out.push(`${at}: empty BulkDataURI`);
    if ('InlineBinary' in el && (typeof el.InlineBinary !== 'string' || !el.InlineBinary)) out.push(`${at}: empty InlineBinary`);
    if (!('Value' in el)) continue;
    const vals = el.Value;
    if (!Array.isArray(vals) || vals.length === 0) {
      out.push(`${at}: Value is not a non-empty array (an empty attribute has no Value, F.2.5)`);
      continue;
    }
    vals.forEach((v: unknown, i: number) => {
      const vi = `${at}[${i}]`;
      if (el.vr === 'SQ') {
        if (!v || typeof v !== 'object' || Array.isArray(v)) out.push(`${vi}: sequence item is not an object`);
        else out.push(...f2Violations(v as Record<string, any>, `${vi}.`));
        return;
      }
      if (v === null) {
        if (vals.length < 2) out.push(`${vi}: null outside a multi-valued attribute (F.2.5)`);
        return;
      }
      if (F2_NUMBER_VRS.has(el.vr)) {
        if (typeof v !== 'number' || !Number.isFinite(v)) out.push(`${vi}: ${el.vr} value ${JSON.stringify(v)} is not a number (F.2.3)`);
      } else if (el.vr === 'SV' || el.vr === 'UV') {
        if (!(typeof v === 'number' && Number.isInteger(v)) && !(typeof v === 'string' && /^[+-]?\d+$/.test(v))) out.push(`${vi}: ${el.vr} value is not an integer`);
      } else if (el.vr === 'AT') {
        if (typeof v !== 'string' || !/^[0-9A-F]{8}$/.test(v)) out.push(`${vi}: AT value ${JSON.stringify(v)} is not 8 hex digits (F.2.3)`);
      } else if (el.vr === 'PN') {
        const keys = v && typeof v === 'object' ? Object.keys(v) : [];
        if (!keys.length || keys.some((k) => !['Alphabetic', 'Ideographic', 'Phonetic'].includes(k) || typeof (v as any)[k] !== 'string' || !(v as any)[k])) {
          out.push(`${vi}: PN value ${JSON.stringify(v)} is not an object of non-empty component groups (F.2.2.1)`);
        }
      } else if (typeof v !== 'string' || v === '') out.push(`${vi}: ${el.vr} value ${JSON.stringify(v)} is not a non-empty string (F.2.3, F.2.5)`);
    });
  }
  return out;
}

for (const dbu of databasesUnderTest()) {
  describe(`DICOMweb details found with OHIF, on ${dbu.name}`, () => {
    let t: { db: Db; close(): Promise<void> };
    let pki: Pki;
    let s: DicomwebServer;
    let token: string;
    let writer: string;
    /** SOP Instance UID → the sample stored under it. */
    const stored = new Map<string, Sample>();
    const get = (p: string, accept = 'application/dicom+json') => raw(s.url, s.ca, 'GET', p, { token, headers: { accept } });

    beforeAll(async () => {
      t = await dbu.open();
      pki = await testPki();
      s = await startDicomwebServer({ db: t.db, pki });
      await s.department('radiology');
      writer = await s.user('rad-writer', [{ department: 'radiology', role: 'writer' }]);
      token = await s.user('rad-reader', [{ department: 'radiology', role: 'reader' }]);
      for (const smp of samples) {
        const m = multipart([{ body: smp.bytes }]);
        const r = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token: writer, headers: { 'content-type': m.contentType, accept: 'application/dicom+json' }, body: m.body });
        if (r.status === 200) stored.set(smp.sop, stored.get(smp.sop) ?? smp);
        else expect(r.status, `${smp.name}: ${r.text}`).toBe(409); // a re-send of a stored SOP Instance UID
      }
    }, 600_000);
    afterAll(async () => {
      await s?.close();
      await t?.close();
    });

    // ---- 1. QIDO: no empty attribute that viewers read unguarded ----

    it('the unfiltered study list leaves out an empty ModalitiesInStudy, keeps Type R keys zero-length, and OHIF maps every study', async () => {
      const r = await get('/dicomweb/studies');
      expect(r.status).toBe(200);
      const list = r.json as any[];
      const studies = new Set([...stored.values()].map((x) => x.study));
      expect(list.length).toBe(studies.size);
      const withModality = new Set([...stored.values()].filter((x) => x.modality).map((x) => x.study));
      const without = [...studies].filter((st) => !withModality.has(st));
      expect(without.length, 'the samples hold studies without any Modality').toBeGreaterThan(0);
      for (const m of list) {
        const uid = m['0020000D'].Value[0];
        expect(() => ohifGetModalities(m['00080060'], m['00080061']), uid).not.toThrow();
        if (withModality.has(uid)) expect(m['00080061'].Value.length, uid).toBeGreaterThan(0);
        else expect(m['00080061'], uid).toBeUndefined();
        // Type R keys of PS3.18 Table 10.6.3-3 stay, zero-length when unknown (F.2.5: no "Value").
        for (const tag of ['00080020', '00080050', '00080090', '00100010', '00100020', '00201206', '00201208']) {
          expect(m[tag], `${uid} ${tag}`).toBeDefined();
          if ('Value' in m[tag]) expect(m[tag].Value.length, `${uid} ${tag}`).toBeGreaterThan(0);
        }
      }
    });

    it('instance and series results leave out the Type C keys that are not known (Rows, Columns, Series Description…)', async () => {
      const list = (await get('/dicomweb/instances?limit=1000')).json as any[];
      expect(list.length).toBe(stored.size);
      let noRows = 0;
      for (const m of list) {
        for (const [tag, el] of Object.entries<any>(m)) {
          if (['00280008', '00280010', '00280011', '00280100', '0008103E', '00080201'].includes(tag)) {
            expect(el.Value?.length, `${tag} present only with a value`).toBeGreaterThan(0);
          }
        }
        if (!m['00280010']) noRows++;
      }
      expect(noRows, 'some samples are not images').toBeGreaterThan(0);
      // Asked for by name, an unknown key is still returned zero-length (PS3.18 §10.6.3.3: the
      // attributes passed as includefield are returned).
      const asked = (await get('/dicomweb/instances?limit=1000&includefield=00280010')).json as any[];
      expect(asked.every((m) => m['00280010'] !== undefined)).toBe(true);
      expect(asked.some((m) => m['00280010'].Value === undefined)).toBe(true);
    });

    // ---- 2. Comma-separated value lists ----

    it('ModalitiesInStudy=CT,MR is the list CT\\MR (PS3.18 §8.3.4.1), also with spaces, and a comma list works for other list-matchable VRs', async () => {
      const uids = (list: any[]) => list.map((m) => m['0020000D'].Value[0]).sort();
      const backslash = await get(`/dicomweb/studies?ModalitiesInStudy=${encodeURIComponent('CT\\MR')}`);
      const comma = await get('/dicomweb/studies?ModalitiesInStudy=CT,MR');
      const spaced = await get(`/dicomweb/studies?ModalitiesInStudy=${encodeURIComponent('CT, MR')}`);
      const want = [...new Set([...stored.values()].filter((x) => x.modality === 'CT' || x.modality === 'MR').map((x) => x.study))].sort();
      expect(want.length).toBeGreaterThan(1);
      expect(uids(backslash.json)).toEqual(want);
      expect(uids(comma.json)).toEqual(want);
      expect(uids(spaced.json)).toEqual(want);
      // Modality (CS) at the series level, and a date list (DA).
      const series = (await get('/dicomweb/series?Modality=CT,MR&limit=1000')).json as any[];
      const wantSeries = new Set([...stored.values()].filter((x) => x.modality === 'CT' || x.modality === 'MR').map((x) => x.series));
      expect(new Set(series.map((m) => m['0020000E'].Value[0]))).toEqual(wantSeries);
      const all = (await get('/dicomweb/studies')).json as any[];
      const dates = [...new Set(all.map((m) => m['00080020']?.Value?.[0]).filter(Boolean))].slice(0, 2) as string[];
      expect(dates.length).toBe(2);
      const byDates = (await get(`/dicomweb/studies?StudyDate=${dates.join(',')}`)).json as any[];
      expect(uids(byDates)).toEqual(uids(all.filter((m) => dates.includes(m['00080020']?.Value?.[0]))));
      // A comma inside a person name or description is text, not a separator.
      const named = await get(`/dicomweb/studies?PatientName=${encodeURIComponent('CT,MR')}`);
      expect(named.status).toBe(200);
      expect(named.json).toEqual([]);
    });
    // ---- 3. /metadata per PS3.18 F.2 ----

    it('/metadata of every stored sample follows PS3.18 F.2: no [""] or [null], AT as 8 hex digits, PN objects, numbers for IS/DS', async () => {
      const studies = [...new Set([...stored.values()].map((x) => x.study))];
      const problems: string[] = [];
      let instances = 0;
      const vrs = new Set<string>();
      const visit = (ds: Record<string, any>) => {
        for (const el of Object.values<any>(ds)) {
          vrs.add(el.vr);
          if (el.vr === 'SQ') for (const item of el.Value ?? []) visit(item);
        }
      };
      for (const st of studies) {
        const r = await get(`/dicomweb/studies/${st}/metadata`);
        expect(r.status, st).toBe(200);
        for (const ds of r.json as any[]) {
          instances++;
          visit(ds);
          problems.push(...f2Violations(ds).map((p) => `${ds['00080018']?.Value?.[0]} ${p}`));
        }
      }
      expect(instances).toBe(stored.size);
      expect(problems).toEqual([]);
      // The check had something to check: the samples carry these VRs.
      for (const vr of ['AT', 'PN', 'IS', 'DS', 'SQ', 'US', 'FD']) expect(vrs.has(vr), vr).toBe(true);
      // A multi-frame sample's Frame Increment Pointer, as the issue saw it.
      for (const [name, want] of [['JPEG2000.dcm', ['00540010', '00540020']], ['rtdose.dcm', ['3004000C']]] as const) {
        // The instance stored under this sample's SOP Instance UID (a few samples share one).
        const smp = stored.get(samples.find((x) => x.name === name)?.sop ?? '');
        expect(smp, name).toBeDefined();
        const md = (await get(`/dicomweb/studies/${smp!.study}/series/${smp!.series}/instances/${smp!.sop}/metadata`)).json[0];
        expect(md['00280009'], name).toEqual({ vr: 'AT', Value: want });
      }
    });

    it('a row stored the old way ([""], [null], AT integers, PN text, IS strings) is served per F.2, by /metadata and by QIDO', async () => {
      const smp = [...stored.values()].find((x) => x.modality === 'CT')!;
      const url = `/dicomweb/studies/${smp.study}/series/${smp.series}/instances/${smp.sop}/metadata`;
      const [row] = await t.db('instances').where({ sop_instance_uid: smp.sop }).select('metadata');
      const md = typeof row.metadata === 'string' ? JSON.parse(row.metadata) : row.metadata;
      const old = {
        ...md,
        '00080050': { vr: 'SH', Value: [''] },
        '00081030': { vr: 'LO', Value: [null] },
        '00280009': { vr: 'AT', Value: [5505040, 5505056] },
        '00080090': { vr: 'PN', Value: [''] },
        '00081050': { vr: 'PN', Value: ['Doe^Jane=\u5c71\u7530', {}] },
        '00200013': { vr: 'IS', Value: [' 7'] },
        '00080008': { vr: 'CS', Value: ['ORIGINAL', ''] },
        '00400275': { vr: 'SQ', Value: [{ '00400009': { vr: 'SH', Value: [''] } }] },
      };
      // A row of an older release has none of migration 006's read columns (its backfill
      // runs the same normalization): NULL makes the read fall back to the JSON itself.
      await t.db('instances').where({ sop_instance_uid: smp.sop }).update({ metadata: JSON.stringify(old), metadata_json: null, qido_attributes: null });
      const r = await get(url);
      expect(r.status).toBe(200);
      const got = r.json[0];
      expect(f2Violations(got)).toEqual([]);
      expect(got['00080050']).toEqual({ vr: 'SH' });
      expect(got['00081030']).toEqual({ vr: 'LO' });
      expect(got['00280009']).toEqual({ vr: 'AT', Value: ['00540010', '00540020'] });
      expect(got['00080090']).toEqual({ vr: 'PN' });
      expect(got['00081050']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane', Ideographic: '\u5c71\u7530' }, null] });
      expect(got['00200013']).toEqual({ vr: 'IS', Value: [7] });
      expect(got['00080008']).toEqual({ vr: 'CS', Value: ['ORIGINAL', null] });
      expect(got['00400275']).toEqual({ vr: 'SQ', Value: [{ '00400009': { vr: 'SH' } }] });
      // QIDO renders stored JSON too (includefield=all).
      const q = (await get(`/dicomweb/studies/${smp.study}/series/${smp.series}/instances?SOPInstanceUID=${smp.sop}&includefield=all`)).json[0];
      expect(f2Violations(q)).toEqual([]);
      expect(q['00280009']).toEqual({ vr: 'AT', Value: ['00540010', '00540020'] });
    });
  });
}

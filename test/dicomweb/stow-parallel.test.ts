// Issue 13: a STOW-RS request's parts are read one after the other but stored up to four
// at a time. The answer still lists them in request order (PS3.18 §10.5.3), a part that
// fails does not disturb its neighbours, and every stored part has its row and blob.
// Raw HTTPS requests against the real app, on each database.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { raw, startDicomwebServer, type DicomwebServer } from '../helpers/dicomweb.js';
import { testPki } from '../helpers/http.js';

const B = 'stow-parallel-13';

for (const dbu of databasesUnderTest()) {
  describe(`STOW-RS parts stored in parallel on ${dbu.name}`, () => {
    let t: { db: Db; close(): Promise<void> };
    let pki: Pki;
    let s: DicomwebServer;
    let token: string;

    beforeAll(async () => {
      t = await dbu.open();
      pki = await testPki();
      s = await startDicomwebServer({ db: t.db, pki });
      await s.department('radiology');
      token = await s.user('writer13', [{ department: 'radiology', role: 'writer' }]);
    }, 60_000);
    afterAll(async () => {
      await s?.close();
      await t?.close();
    });

    it('12 parts, some failing, answered in request order with every good one stored', async () => {
      const study = reissue().study;
      const taken = reissue('CT_small.dcm', { study });
      // Already stored, so a different object under its SOP Instance UID is a conflict.
      const first = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', {
        token,
        headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${B}`, accept: 'application/dicom+json' },
        body: Buffer.concat([Buffer.from(`--${B}\r\nContent-Type: application/dicom\r\n\r\n`), taken.bytes, Buffer.from(`\r\n--${B}--\r\n`)]),
      });
      expect(first.status, first.text).toBe(200);

      type P = { kind: 'ok'; sop: string; bytes: Buffer } | { kind: 'bad'; bytes: Buffer; sop?: string };
      const parts: P[] = [];
      for (let i = 0; i < 12; i++) {
        if (i === 3) parts.push({ kind: 'bad', bytes: Buffer.from('not a DICOM file at all') });
        else if (i === 7) parts.push({ kind: 'bad', sop: taken.sop, bytes: reissue('MR_small.dcm', { study, sop: taken.sop }).bytes });
        else {
          const r = reissue(i % 2 ? 'MR_small.dcm' : 'CT_small.dcm', { study });
          parts.push({ kind: 'ok', sop: r.sop, bytes: r.bytes });
        }
      }
      const body = Buffer.concat([
        ...parts.flatMap((p) => [Buffer.from(`--${B}\r\nContent-Type: application/dicom\r\n\r\n`), p.bytes, Buffer.from('\r\n')]),
        Buffer.from(`--${B}--\r\n`),
      ]);
      const r = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', {
        token,
        headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${B}`, accept: 'application/dicom+json' },
        body,
      });
      expect(r.status, r.text).toBe(202);
      // Referenced SOP Sequence (0008,1199): the good parts, in the order they were sent.
      const okSops = (r.json?.['00081199']?.Value ?? []).map((x: any) => x['00081155'].Value[0]);
      expect(okSops).toEqual(parts.flatMap((p) => (p.kind === 'ok' ? [p.sop] : [])));
      // Failed SOP Sequence (0008,1198): the conflict (0x0111), named; Other Failures
      // Sequence (0008,119A): the part that is no DICOM at all (0xC000 cannot understand).
      const failed = r.json?.['00081198']?.Value ?? [];
      expect(failed.map((x: any) => [x['00081155'].Value[0], x['00081197'].Value[0]])).toEqual([[taken.sop, 0x0111]]);
      expect((r.json?.['0008119A']?.Value ?? []).map((x: any) => x['00081197'].Value[0])).toEqual([0xc000]);
      const rows = await t.db('instances').join('series', 'series.id', 'instances.series_id').join('studies', 'studies.id', 'series.study_id').where('studies.study_uid', study).count({ n: '*' });
      expect(Number(rows[0].n)).toBe(1 + 10);
      expect(await t.db('blob_journal').count({ n: '*' }).then(([x]) => Number(x.n))).toBe(0);
    }, 60_000);
  });
}

// Issue 14, item 6: a STOW-RS part whose header block is followed directly by the
// boundary (no body, or not even the blank line that ends the headers) must get a clean
// 400 at once — it used to get no answer until the socket was dropped about 60 s later.
// Raw HTTPS requests against the real app.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { raw, startDicomwebServer, type DicomwebServer } from '../helpers/dicomweb.js';
import { expectErrorBody } from '../helpers/error-body.js';
import { testPki } from '../helpers/http.js';

const B = 'stow-boundary-14-6';

for (const dbu of databasesUnderTest()) {
  describe(`STOW-RS part without a body on ${dbu.name}`, () => {
    let t: { db: Db; close(): Promise<void> };
    let pki: Pki;
    let s: DicomwebServer;
    let token: string;

    beforeAll(async () => {
      t = await dbu.open();
      pki = await testPki();
      // The idle timeout is long on purpose: the answer must not come from it.
      s = await startDicomwebServer({ db: t.db, pki, stowIdleTimeoutMs: 60_000 });
      await s.department('radiology');
      token = await s.user('writer14', [{ department: 'radiology', role: 'writer' }]);
    }, 60_000);
    afterAll(async () => {
      await s?.close();
      await t?.close();
    });

    const post = (body: Buffer | string) =>
      raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${B}`, accept: 'application/dicom+json' }, body });

    // [name, body, expected]: 400 bad-multipart for a malformed body; a well-formed part
    // with an empty body is a failed instance (409, 0xC000 cannot understand, PS3.18 §10.5.3);
    // a stored part followed by a malformed one is 202 (some failed).
    const cases: [string, string | (() => Buffer), 400 | 409 | 202][] = [
      ['headers, blank line, then the closing boundary', `--${B}\r\nContent-Type: application/dicom\r\n\r\n--${B}--\r\n`, 400],
      ['headers, then the closing boundary without the blank line', `--${B}\r\nContent-Type: application/dicom\r\n--${B}--\r\n`, 400],
      ['headers, blank line, then the next part', `--${B}\r\nContent-Type: application/dicom\r\n\r\n--${B}\r\nContent-Type: application/dicom\r\n\r\nxx\r\n--${B}--\r\n`, 400],
      ['headers, blank line, an empty body, then the closing boundary', `--${B}\r\nContent-Type: application/dicom\r\n\r\n\r\n--${B}--\r\n`, 409],
      ['headers and nothing after them', `--${B}\r\nContent-Type: application/dicom\r\n\r\n`, 400],
      ['a valid part, then an empty one', () => Buffer.concat([Buffer.from(`--${B}\r\nContent-Type: application/dicom\r\n\r\n`), reissue('CT_small.dcm').bytes, Buffer.from(`\r\n--${B}\r\nContent-Type: application/dicom\r\n--${B}--\r\n`)]), 202],
    ];
    for (const [name, body, expected] of cases) {
      it(`${name}: a 4xx at once, not a hang`, async () => {
        const t0 = Date.now();
        const r = await post(typeof body === 'string' ? body : body());
        const ms = Date.now() - t0;
        if (expected === 400) expectErrorBody({ ...r, body: r.json }, 400, 'bad-multipart');
        else {
          expect(r.status, r.text).toBe(expected);
          // Failed SOP Sequence (0008,119A) with Failure Reason C000 (cannot understand).
          expect(r.json?.['0008119A']?.Value?.[0]?.['00081197']?.Value, r.text).toEqual([0xc000]);
        }
        // Generous: far below the 60 s idle timeout that used to end it.
        expect(ms).toBeLessThan(20_000);
      });
    }
  });
}

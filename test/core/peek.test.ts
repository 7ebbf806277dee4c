// peekInstanceUids (src/core/dicom/peek.ts) reads the SOP Instance and Study Instance
// UIDs from an object's first bytes so that a C-STORE's lookup can start while the rest
// arrives (issue 13). It is only a hint, but a wrong hint must never be possible: for
// every pydicom sample and every cut of its bytes, it either gives up or gives exactly
// the UIDs the full parse finds; and it never throws.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TAG } from '../../src/core/dicom/levels.js';
import { parsePart10File } from '../../src/core/dicom/parse.js';
import { buildPart10Header } from '../../src/core/dicom/part10.js';
import { peekInstanceUids } from '../../src/core/dicom/peek.js';
import { sampleFiles } from '../helpers/samples.js';

const uid = (dict: Record<string, any>, tag: string) => (dict[tag]?.Value?.[0] as string | undefined)?.replace(/\0/g, '').trim();

/** An explicit VR little endian element (PS3.5 §7.1.2). */
function el(tag: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(tag >>> 16, 0);
  h.writeUInt16LE(tag & 0xffff, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length === 0 && vr === 'SQ' ? 0xffffffff : value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const str = (s: string) => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
const item = (body: Buffer, undefinedLength: boolean) => {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0xfffe, 0);
  h.writeUInt16LE(0xe000, 2);
  h.writeUInt32LE(undefinedLength ? 0xffffffff : body.length, 4);
  const end = Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]);
  return Buffer.concat([h, body, undefinedLength ? end : Buffer.alloc(0)]);
};
const seqEnd = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);

describe('peekInstanceUids', () => {
  it('for every sample and every cut: the parse’s UIDs or nothing, never an error', async () => {
    let found = 0;
    let cuts = 0;
    for (const file of sampleFiles()) {
      const bytes = fs.readFileSync(file);
      // An object the parse refuses is never ingested, so whatever the peek says of it is
      // never used (its look-ahead is released): only that it does not throw matters there.
      let expected: { studyUid?: string; sopInstanceUid?: string } | undefined;
      try {
        const o = await parsePart10File(file);
        expected = { studyUid: uid(o.dict, TAG.StudyInstanceUID), sopInstanceUid: uid(o.dict, TAG.SOPInstanceUID) };
      } catch {
        expected = undefined;
      }
      const step = Math.max(1, Math.floor(Math.min(bytes.length, 70_000) / 200));
      for (let cut = 0; cut <= Math.min(bytes.length, 70_000); cut += step) {
        const got = await peekInstanceUids(bytes.subarray(0, cut));
        cuts++;
        if (got === undefined || expected === undefined) continue;
        expect(got, `${path.basename(file)} cut at ${cut}`).toEqual(expected);
      }
      if (expected && (await peekInstanceUids(bytes.subarray(0, 65536)))) found++;
    }
    expect(cuts).toBeGreaterThan(5000);
    // Most samples are plain little-endian objects: the peek must find them, or it is useless.
    expect(found).toBeGreaterThan(sampleFiles().length / 2);
  });

  it('skips nested undefined-length sequences before the UIDs, and gives up inside one that is cut', async () => {
    const header = buildPart10Header({ transferSyntaxUid: '1.2.840.10008.1.2.1', sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: '1.2.3.4' });
    const nested = el(0x00081110, 'SQ', Buffer.concat([item(Buffer.concat([el(0x00081150, 'UI', str('1.2.9')), el(0x00081199, 'SQ', Buffer.concat([item(el(0x00081155, 'UI', str('1.2.8')), true), seqEnd]))]), true), seqEnd]));
    const dataset = Buffer.concat([el(0x00080016, 'UI', str('1.2.840.10008.5.1.4.1.1.2')), el(0x00080018, 'UI', str('1.2.3.4')), nested, el(0x0020000d, 'UI', str('1.2.5.6')), el(0x0020000e, 'UI', str('1.2.5.7'))]);
    const file = Buffer.concat([header, dataset]);
    expect(await peekInstanceUids(file)).toEqual({ studyUid: '1.2.5.6', sopInstanceUid: '1.2.3.4' });
    // Cut anywhere before the end of the Study Instance UID's value: nothing, and no throw.
    const studyEnd = file.indexOf(str('1.2.5.6')) + str('1.2.5.6').length;
    for (let cut = 0; cut < studyEnd; cut++) expect(await peekInstanceUids(file.subarray(0, cut))).toBeUndefined();
    // A data set without the study UID before later tags: nothing.
    const noStudy = Buffer.concat([header, el(0x00080018, 'UI', str('1.2.3.4')), el(0x0020000e, 'UI', str('1.2.5.7'))]);
    expect(await peekInstanceUids(noStudy)).toBeUndefined();
  });

  it('reads a big-endian data set as the walk does, and gives up on a deflated one (the walk does not read those)', async () => {
    // Explicit VR big endian (retired, PS3.5 Annex A.3): tags and lengths big endian.
    const be = (tag: number, value: Buffer) => {
      const h = Buffer.alloc(8);
      h.writeUInt16BE(tag >>> 16, 0);
      h.writeUInt16BE(tag & 0xffff, 2);
      h.write('UI', 4, 'latin1');
      h.writeUInt16BE(value.length, 6);
      return Buffer.concat([h, value]);
    };
    const bigHeader = buildPart10Header({ transferSyntaxUid: '1.2.840.10008.1.2.2', sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: '1.2.3.4' });
    expect(await peekInstanceUids(Buffer.concat([bigHeader, be(0x00080018, str('1.2.3.4')), be(0x0020000d, str('1.2.5.6'))]))).toEqual({ studyUid: '1.2.5.6', sopInstanceUid: '1.2.3.4' });
    const deflatedHeader = buildPart10Header({ transferSyntaxUid: '1.2.840.10008.1.2.1.99', sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: '1.2.3.4' });
    expect(await peekInstanceUids(Buffer.concat([deflatedHeader, el(0x00080018, 'UI', str('1.2.3.4')), el(0x0020000d, 'UI', str('1.2.5.6'))]))).toBeUndefined();
  });
});

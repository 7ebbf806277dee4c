// Unit tests of the DICOMweb building blocks that need no server: media types and
// negotiation, QIDO parameters, the Store Instances Response, frame planning, multipart
// parsing edge cases, and image fitting.

import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isTresorError } from '../../src/core/errors.js';
import { parseFrameList, planFrames } from '../../src/core/dicom/pixels/frame-plan.js';
import type { PixelLayout } from '../../src/core/dicom/pixels/layout.js';
import { fit, parseViewport, parseWindow } from '../../src/core/dicom/pixels/render.js';
import { parseAccept, parseMediaType } from '../../src/http/dicomweb/accept.js';
import { chooseInstance, choosePixel } from '../../src/http/dicomweb/negotiate.js';
import { qidoRequest, tagOf } from '../../src/http/dicomweb/qido-params.js';
import { failureOf, stowResponse, stowStatus } from '../../src/http/dicomweb/stow-response.js';
import { withBulkDataUris } from '../../src/http/dicomweb/urls.js';
import { closeDelimiter, parseMultipart, parseMultipartContentType, partHead } from '../../src/http/dicomweb/multipart.js';
import { conflict, forbidden, invalid, tooLarge } from '../../src/core/errors.js';

const EXPLICIT = '1.2.840.10008.1.2.1';
const IMPLICIT = '1.2.840.10008.1.2';
const JPEG = '1.2.840.10008.1.2.4.50';
const JPEG51 = '1.2.840.10008.1.2.4.51';

describe('Accept parsing (PS3.18 §8.7.3)', () => {
  it('reads quoted parameters, transfer-syntax and q, best first', () => {
    const r = parseAccept('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50; q=0.5, multipart/related; type="application/dicom"; transfer-syntax=*');
    expect(r.map((x) => x.params['transfer-syntax'])).toEqual(['*', JPEG]);
    expect(r[0].params.type).toBe('application/dicom');
    expect(parseAccept(undefined)).toEqual([{ type: '*', subtype: '*', params: {}, q: 1 }]);
    expect(parseAccept('image/png;q=0, image/jpeg').map((x) => x.subtype)).toEqual(['jpeg']);
  });
  it('refuses malformed media types and repeated parameters', () => {
    for (const bad of ['nope', 'a/b/c', 'image/jpeg; q=2', 'application/dicom; transfer-syntax=1; transfer-syntax=2', 'a/b; noequals']) {
      expect(() => parseAccept(bad), bad).toThrow();
    }
    expect(parseMediaType('text/plain')).toEqual({ type: 'text', subtype: 'plain', params: {}, q: 1 });
  });
});

describe('negotiation', () => {
  const acc = (s: string) => parseAccept(s);
  it('instances: * or the stored syntax is as stored; the default is Explicit VR Little Endian; else transcode or nothing', () => {
    expect(chooseInstance(acc('multipart/related; type="application/dicom"; transfer-syntax=*'), JPEG, 10)).toEqual({ mode: 'stored', ts: JPEG });
    expect(chooseInstance(acc(`multipart/related; type="application/dicom"; transfer-syntax=${JPEG}`), JPEG, 10)).toEqual({ mode: 'stored', ts: JPEG });
    expect(chooseInstance(acc('multipart/related; type="application/dicom"'), EXPLICIT, 10)).toEqual({ mode: 'stored', ts: EXPLICIT });
    expect(chooseInstance(acc('multipart/related; type="application/dicom"'), IMPLICIT, 10)).toEqual({ mode: 'transcode', ts: EXPLICIT });
    expect(chooseInstance(acc('multipart/related; type="application/dicom"'), IMPLICIT, 1 << 30)).toBeNull();
    expect(chooseInstance(acc('multipart/related; type="application/dicom"'), JPEG51, 10)).toBeNull();
    expect(chooseInstance(acc('application/json'), EXPLICIT, 10)).toBeNull();
    expect(chooseInstance(acc('*/*'), EXPLICIT, 10)).toEqual({ mode: 'stored', ts: EXPLICIT });
  });
  it('pixels: native as octet-stream; compressed as stored with its media type, or as octet-stream when * is asked', () => {
    expect(choosePixel(acc('multipart/related; type="application/octet-stream"'), IMPLICIT, false)?.contentType).toBe(`application/octet-stream; transfer-syntax=${EXPLICIT}`);
    expect(choosePixel(acc('multipart/related; type="application/octet-stream"'), JPEG, false)).toBeNull();
    expect(choosePixel(acc('multipart/related; type="application/octet-stream"; transfer-syntax=*'), JPEG, false)?.contentType).toBe(`application/octet-stream; transfer-syntax=${JPEG}`);
    expect(choosePixel(acc('multipart/related; type="image/jpeg"'), JPEG, false)?.contentType).toBe(`image/jpeg; transfer-syntax=${JPEG}`);
    expect(choosePixel(acc('multipart/related; type="image/jpeg"'), JPEG51, false)).toBeNull(); // image/jpeg defaults to 4.50
    expect(choosePixel(acc(`multipart/related; type="image/jpeg"; transfer-syntax=${JPEG51}`), JPEG51, false)?.mediaType).toBe('image/jpeg');
    expect(choosePixel(acc('multipart/related; type="image/x-dicom-rle"'), '1.2.840.10008.1.2.5', false)?.mediaType).toBe('image/dicom-rle');
    expect(choosePixel(acc('application/octet-stream'), EXPLICIT, true)?.multipart).toBe(false);
    expect(choosePixel(acc('application/octet-stream'), EXPLICIT, false)).toBeNull();
    expect(choosePixel(acc('*/*'), JPEG, false)?.contentType).toBe(`image/jpeg; transfer-syntax=${JPEG}`);
    // OHIF's omitQuotationForMultipartRequest sends the type unquoted.
    expect(choosePixel(acc('multipart/related; type=application/octet-stream; transfer-syntax=*'), JPEG, false)?.contentType).toBe(`application/octet-stream; transfer-syntax=${JPEG}`);
    expect(chooseInstance(acc('multipart/related; type=application/dicom; transfer-syntax=*'), JPEG, 10)).toEqual({ mode: 'stored', ts: JPEG });
  });
});

describe('QIDO-RS parameters', () => {
  it('keywords and tags, UID lists, sequences, includefield, paging', () => {
    expect(tagOf('PatientName')).toBe('00100010');
    expect(tagOf('0020000d')).toBe('0020000D');
    expect(() => tagOf('NotAKeyword')).toThrow();
    const r = qidoRequest('STUDY', { PatientName: 'Doe*', StudyInstanceUID: '1.2,1.3', 'RequestAttributesSequence.ScheduledProcedureStepID': 'X1', includefield: ['StudyDescription,00081030', 'all'], limit: '5', offset: '10', fuzzymatching: 'true' }, {});
    expect(r.identifier['00100010']).toEqual({ vr: 'PN', Value: ['Doe*'] });
    expect(r.identifier['0020000D']).toEqual({ vr: 'UI', Value: ['1.2\\1.3'] });
    expect(r.identifier['00400275']).toEqual({ vr: 'SQ', Value: [{ '00400009': { vr: 'SH', Value: ['X1'] } }] });
    expect(r.includeFields).toEqual(['00081030']);
    expect([r.includeAll, r.limit, r.offset, r.fuzzy]).toEqual([true, 5, 10, true]);
    expect(qidoRequest('SERIES', { StudyInstanceUID: '9.9' }, { '0020000D': '1.2' }).identifier['0020000D']).toEqual({ vr: 'UI', Value: ['1.2'] });
    expect(qidoRequest('STUDY', { PatientID: '' }, {}).identifier['00100020']).toEqual({ vr: 'LO' });
  });
  it('refuses repeated keys, bad numbers and unknown names', () => {
    for (const q of [{ PatientID: ['a', 'b'] }, { limit: '-1' }, { offset: 'x' }, { fuzzymatching: 'yes' }, { Nope: '1' }, { 'PatientName.Foo': 'x' }]) {
      expect(() => qidoRequest('STUDY', q, {}), JSON.stringify(q)).toThrow();
    }
  });
});

describe('Store Instances Response (PS3.18 §10.5.3)', () => {
  it('maps core errors to Failure Reasons', () => {
    expect(failureOf(tooLarge('object-too-large')).reason).toBe(0xa700);
    expect(failureOf(forbidden()).reason).toBe(0x0124);
    expect(failureOf(conflict('sop-instance-conflict')).reason).toBe(0x0111);
    expect(failureOf(conflict('study-in-other-department')).reason).toBe(0x0124);
    expect(failureOf(invalid('missing-attribute')).reason).toBe(0xa900);
    expect(failureOf(invalid('not-part10')).reason).toBe(0xc000);
    expect(failureOf(new Error('boom')).reason).toBe(0x0110);
  });
  it('builds the sequences and the status', () => {
    const ok = { ok: true as const, sopClassUid: '1.2', sopInstanceUid: '1.2.3', studyUid: '1', seriesUid: '1.1' };
    const bad = { ok: false as const, sopClassUid: '1.2', sopInstanceUid: '1.2.4', reason: 0x0111, conflict: true };
    const anon = { ok: false as const, reason: 0xc000, conflict: false };
    const ds = stowResponse([ok, bad, anon], '/dicomweb/studies/1', () => '/x');
    expect(ds['00081190'].Value).toEqual(['/dicomweb/studies/1']);
    expect((ds['00081199'].Value as any[])[0]['00081190'].Value).toEqual(['/x']);
    expect((ds['00081198'].Value as any[])[0]['00081197'].Value).toEqual([0x0111]);
    expect((ds['0008119A'].Value as any[])[0]['00081197'].Value).toEqual([0xc000]);
    expect([stowStatus([ok]), stowStatus([ok, bad]), stowStatus([bad, anon]), stowStatus([{ ...ok, warning: 0xb000 }])]).toEqual([200, 202, 409, 202]);
  });
});

describe('BulkDataURI links', () => {
  it('resolves markers under the instance URL, inside sequences too, and drops anything else', () => {
    const md = {
      '7FE00010': { vr: 'OW', BulkDataURI: 'bulkdata/7FE00010' },
      '00540016': { vr: 'SQ', Value: [{ '00181072': { vr: 'OB', BulkDataURI: 'bulkdata/00540016/0/00181072' } }] },
      '00091010': { vr: 'OB', BulkDataURI: 'https://evil.example/x' },
    };
    const out = withBulkDataUris(md, 'https://pacs/dicomweb/studies/1/series/2/instances/3');
    expect(out['7FE00010'].BulkDataURI).toBe('https://pacs/dicomweb/studies/1/series/2/instances/3/bulkdata/7FE00010');
    expect((out['00540016'].Value as any[])[0]['00181072'].BulkDataURI).toBe('https://pacs/dicomweb/studies/1/series/2/instances/3/bulkdata/00540016/0/00181072');
    expect(out['00091010']).toEqual({ vr: 'OB' });
  });
});

describe('frames', () => {
  const m = { rows: 2, columns: 3, samplesPerPixel: 1, bitsAllocated: 16, numberOfFrames: 4, photometricInterpretation: 'MONOCHROME2' };
  it('parses frame lists strictly', () => {
    expect(parseFrameList('1,3,2')).toEqual([1, 3, 2]);
    for (const bad of ['', '0', '1,', 'a', '1;2', '-1', '1,,2', '1 ,2']) expect(() => parseFrameList(bad), bad).toThrow();
  });
  it('plans native frames by offset, 1-bit frames with a bit shift, and encapsulated ones by fragments', () => {
    const native: PixelLayout = { headerEnd: 100, datasetOffset: 132, pixel: { kind: 'native', valueOffset: 112, length: 48 } };
    expect(planFrames(native, m, [2, 4]).map((p) => p.ranges)).toEqual([[{ offset: 124, length: 12 }], [{ offset: 148, length: 12 }]]);
    const e = (() => {
      try {
        planFrames(native, m, [5]);
      } catch (x) {
        return x;
      }
    })();
    expect(isTresorError(e) && e.kind).toBe('not-found');
    const bits = { ...m, rows: 3, columns: 3, bitsAllocated: 1 }; // 9 bits per frame
    const packed: PixelLayout = { headerEnd: 0, datasetOffset: 0, pixel: { kind: 'native', valueOffset: 0, length: 5 } };
    expect(planFrames(packed, bits, [2])[0]).toEqual({ frame: 2, ranges: [{ offset: 1, length: 2 }], length: 2, bitShift: 1 });
    const frag = (o: number) => ({ offset: o, length: 4 });
    const enc: PixelLayout = { headerEnd: 0, datasetOffset: 0, pixel: { kind: 'encapsulated', fragments: [frag(20), frag(32), frag(44), frag(56)], basicOffsetTable: { offset: 8, length: 8 }, botOffsets: [0, 24] } };
    expect(planFrames(enc, { ...m, numberOfFrames: 2 }, [2])[0].ranges).toEqual([frag(44), frag(56)]);
    const oneEach: PixelLayout = { headerEnd: 0, datasetOffset: 0, pixel: { kind: 'encapsulated', fragments: [frag(20), frag(32)] } };
    expect(planFrames(oneEach, { ...m, numberOfFrames: 2 }, [1, 2]).map((p) => p.ranges)).toEqual([[frag(20)], [frag(32)]]);
  });
});

describe('multipart', () => {
  it('checks the boundary of the Content-Type', () => {
    expect(parseMultipartContentType('multipart/related; type="application/dicom"; boundary="abc"')).toEqual({ boundary: 'abc', type: 'application/dicom' });
    expect(parseMultipartContentType('application/json')).toBeNull();
    expect(() => parseMultipartContentType(`multipart/related; boundary=${'x'.repeat(71)}`)).toThrow();
  });
  it('writes what it parses, part by part, and refuses more parts than allowed', async () => {
    const body = Buffer.concat([partHead('B', true, { 'Content-Type': 'application/dicom' }), Buffer.from('one'), partHead('B', false, { 'Content-Type': 'text/plain' }), Buffer.from('two'), closeDelimiter('B', true)]);
    const seen: [string | undefined, string][] = [];
    await parseMultipart(Readable.from([body]), 'B', { maxParts: 5, maxTotalBytes: 1000, idleTimeoutMs: 1000 }, async (p) => {
      const chunks: Buffer[] = [];
      for await (const c of p.body) chunks.push(c as Buffer);
      seen.push([p.mediaType, Buffer.concat(chunks).toString()]);
    });
    expect(seen).toEqual([['application/dicom', 'one'], ['text/plain', 'two']]);
    const e = await parseMultipart(Readable.from([body]), 'B', { maxParts: 1, maxTotalBytes: 1000, idleTimeoutMs: 1000 }, async (p) => void p.body.resume()).catch((x) => x);
    expect(isTresorError(e) && e.reason).toBe('too-many-parts');
    const big = await parseMultipart(Readable.from([body]), 'B', { maxParts: 5, maxTotalBytes: 10, idleTimeoutMs: 1000 }, async (p) => void p.body.resume()).catch((x) => x);
    expect(isTresorError(big) && big.reason).toBe('request-too-large');
  });
});

describe('rendering helpers', () => {
  it('fits keeping the aspect ratio and parses window/viewport strictly', () => {
    const src = Buffer.alloc(4 * 4 * 2, 255);
    expect([fit(src, 4, 2, 2, 2).width, fit(src, 4, 2, 2, 2).height]).toEqual([2, 1]);
    expect(fit(src, 4, 2, 2, 2).data.every((v) => v === 255)).toBe(true);
    expect(parseWindow('40,400')).toEqual({ center: 40, width: 400 });
    expect(parseWindow('40,400,LINEAR')).toEqual({ center: 40, width: 400 });
    for (const bad of ['40', '40,0', 'a,b', '40,400,SIGMOID']) expect(() => parseWindow(bad), bad).toThrow();
    expect(parseViewport('128,64')).toEqual({ width: 128, height: 64 });
    for (const bad of ['0,1', '1', '99999,1', '1,2,3,4,5,6']) expect(() => parseViewport(bad), bad).toThrow();
  });
});

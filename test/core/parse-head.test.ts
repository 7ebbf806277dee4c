// parsePart10File with the spooler's first bytes in memory (issue 13: the parse reads
// nothing back when the attributes fit) must decide exactly as it does from the file
// alone: the same attributes, the same pixel data location, the same refusals — for every
// pydicom sample, with heads cut anywhere, including inside the meta group, inside an
// element header and inside the pixel data.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHead, parsePart10File, type ParsedHead } from '../../src/core/dicom/parse.js';
import { isTresorError } from '../../src/core/errors.js';
import { sampleFiles } from '../helpers/samples.js';

type Outcome = { ok: true; value: unknown } | { ok: false; reason: string };

async function outcome(file: string, known?: { size: number; head: Buffer; parsedHead?: ParsedHead }): Promise<Outcome> {
  try {
    const o = await parsePart10File(file, known);
    return { ok: true, value: JSON.parse(JSON.stringify({ ...o, preamble: o.preamble.toString('hex') })) };
  } catch (e) {
    return { ok: false, reason: isTresorError(e) ? e.reason : `untyped: ${(e as Error).message}` };
  }
}

describe('parsePart10File with the head in memory', () => {
  it('decides every sample exactly as from the file, whatever the length of the head', async () => {
    let compared = 0;
    for (const file of sampleFiles()) {
      const bytes = fs.readFileSync(file);
      const fromFile = await outcome(file);
      const cuts = new Set([0, 1, 131, 132, 140, 200, 333, 1000, 4096, 65536, bytes.length - 1, bytes.length, bytes.length + 10]);
      for (const cut of cuts) {
        if (cut < 0) continue;
        const head = bytes.subarray(0, Math.min(cut, bytes.length));
        const got = await outcome(file, { size: bytes.length, head });
        expect(got, `${path.basename(file)} with a head of ${head.length} bytes`).toEqual(fromFile);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(500);
  });

  it('reads nothing from disk when the head holds the attributes and the pixel data ends the file', async () => {
    const file = sampleFiles().find((f) => path.basename(f) === 'CT_small.dcm')!;
    const bytes = fs.readFileSync(file);
    const gone = path.join(fs.mkdtempSync('/tmp/parse-head-'), 'moved.dcm');
    // The path does not exist: any read of the file would fail.
    const o = await parsePart10File(gone, { size: bytes.length, head: bytes });
    expect(o.pixelData?.elementOffset).toBeGreaterThan(0);
    expect(o.transferSyntaxUid).toBe('1.2.840.10008.1.2.1');
    await expect(parsePart10File(gone, { size: bytes.length, head: bytes.subarray(0, 200) })).rejects.toThrow(/ENOENT/);
  });

  it('with what parseHead read from the head while the rest arrived (issue 13), decides every sample exactly as from the file alone', async () => {
    let reused = 0;
    for (const file of sampleFiles()) {
      const bytes = fs.readFileSync(file);
      const fromFile = await outcome(file);
      for (const cut of new Set([0, 140, 1000, 4096, 65536, bytes.length - 1, bytes.length])) {
        const head = bytes.subarray(0, Math.max(0, Math.min(cut, bytes.length)));
        const parsedHead = await parseHead(head);
        if (parsedHead) reused++;
        // Where it puts Pixel Data is where the file's parse does (the file may still be
        // refused for what lies beyond the head: MR_truncated.dcm).
        if (parsedHead && fromFile.ok) expect((fromFile.value as { pixelData?: { elementOffset: number } }).pixelData?.elementOffset, path.basename(file)).toBe(parsedHead.headerEnd);
        expect(await outcome(file, { size: bytes.length, head, parsedHead }), `${path.basename(file)} with a head of ${head.length} bytes`).toEqual(fromFile);
      }
    }
    expect(reused).toBeGreaterThan(40);
  });

  it('parsePart10File uses what parseHead read only when the file starts with those very bytes', async () => {
    const file = sampleFiles().find((f) => path.basename(f) === 'CT_small.dcm')!;
    const bytes = fs.readFileSync(file);
    const parsedHead = (await parseHead(bytes))!;
    expect(parsedHead.dict['00100010'].Value[0].Alphabetic).toBe('CompressedSamples^CT1');
    // Marked, to see which one the parse returns.
    const marked: ParsedHead = { ...parsedHead, dict: { ...parsedHead.dict, '00100010': { vr: 'PN', Value: [{ Alphabetic: 'FROM^HEAD' }] } } };
    const used = await parsePart10File(file, { size: bytes.length, head: bytes, parsedHead: marked });
    expect(used.dict['00100010'].Value[0].Alphabetic).toBe('FROM^HEAD');
    // The same length, one byte different (another object's head): read from the file again.
    const other = Buffer.from(marked.bytes);
    other[other.length - 20] ^= 1;
    const ignored = await parsePart10File(file, { size: bytes.length, head: bytes, parsedHead: { ...marked, bytes: other } });
    expect(ignored.dict['00100010'].Value[0].Alphabetic).toBe('CompressedSamples^CT1');
    // Pixel Data elsewhere than where the head put it: read from the file again.
    const moved = await parsePart10File(file, { size: bytes.length, head: bytes, parsedHead: { ...marked, headerEnd: marked.headerEnd - 2 } });
    expect(moved.dict['00100010'].Value[0].Alphabetic).toBe('CompressedSamples^CT1');
  });

  it('parseHead gives up (undefined) on a head without the start of Pixel Data, a deflated object, and garbage', async () => {
    const ct = fs.readFileSync(sampleFiles().find((f) => path.basename(f) === 'CT_small.dcm')!);
    expect(await parseHead(ct.subarray(0, 1000))).toBeUndefined();
    expect(await parseHead(Buffer.alloc(70_000, 0x41))).toBeUndefined();
    const deflated = sampleFiles().find((f) => path.basename(f) === 'image_dfl.dcm');
    expect(deflated, 'pydicom ships image_dfl.dcm').toBeDefined();
    expect(await parseHead(fs.readFileSync(deflated!))).toBeUndefined();
  });
});

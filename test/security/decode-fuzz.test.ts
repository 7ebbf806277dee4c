// Issue 14, item 1: every decoding path, fed mutated samples (seeded, reproducible),
// through the one entry point (core/dicom/pixels/pixel-codec.ts) and the frame reader
// the server uses (http/dicomweb/frame-source.ts, which inflates deflated objects).
// Every outcome is either a result within the promised size or a clean typed error
// within the time limit; this process survives, its memory stays bounded and its event
// loop keeps turning (what /healthz needs; the attack through the real server is in
// decompression-bomb.test.ts).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import zlib from 'node:zlib';
import dcmjs from '../../src/core/dicom/dcmjs.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPixelCodec, type PixelCodec } from '../../src/core/dicom/pixels/pixel-codec.js';
import { promisedBytes, shapeOfElements } from '../../src/core/dicom/pixels/pixel-bounds.js';
import type { StoredObject } from '../../src/core/dicom/pixels/stream-reader.js';
import { clearLayoutCache } from '../../src/core/dicom/pixels/layout.js';
import { isTresorError } from '../../src/core/errors.js';
import { frameSource } from '../../src/http/dicomweb/frame-source.js';
import { isEncapsulated, TS } from '../../src/core/dicom/transfer-syntaxes.js';
import { readFileMeta } from '../../src/core/dicom/part10.js';
import { inflatePart10 } from '../../src/core/dicom/inflate.js';
import { parsePart10File } from '../../src/core/dicom/parse.js';

const D = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
const MiB = 1024 * 1024;
const LIMITS = { workers: 2, timeoutMs: 8_000, maxOutputBytes: 16 * MiB };
const VARIANTS = 10;
const SEED = 0x14_0001;
let INFLATES_PAST_CAP: Buffer;
let DEFLATE_BOMB: Buffer;

/** One sample per decoding path: [file, can the transcoder take it (registry's decodable set)]. */
const SAMPLES: [string, string, boolean][] = [
  ['RLE', 'MR_small_RLE.dcm', true],
  ['RLE multi-frame', 'SC_rgb_rle_2frame.dcm', true],
  ['JPEG baseline', 'SC_rgb_jpeg_dcmtk.dcm', true],
  ['JPEG extended', 'JPEG-lossy.dcm', false],
  ['JPEG lossless', 'SC_rgb_jpeg_gdcm.dcm', true],
  ['JPEG-LS', 'MR_small_jpeg_ls_lossless.dcm', true],
  ['JPEG 2000 lossless', 'MR_small_jp2klossless.dcm', true],
  ['JPEG 2000', 'JPEG2000.dcm', true],
  ['deflate', 'image_dfl.dcm', false],
  ['big endian', 'MR_small_bigendian.dcm', true],
];

const ALLOWED = new Set(['decode-failed', 'decode-too-large', 'decode-timeout', 'render-failed', 'not-an-image', 'stored-object-unreadable', 'no-pixel-data', 'no-such-frame', 'frame-boundaries-unknown', 'bad-image-pixel-module', 'blob-truncated']);

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const stored = (bytes: Buffer, ts: string, key: string): StoredObject => ({ key, size: bytes.length, transferSyntaxUid: ts, metadata: {}, open: async () => Readable.from([bytes]) });

/** Writes a US value (Rows 0028,0010 / Columns 0028,0011 / Bits Allocated 0028,0100) in place, either byte order. */
function patchUS(b: Buffer, element: number, value: number, little: boolean): void {
  const tag = little ? Buffer.from([0x28, 0x00, element & 0xff, element >> 8, 0x55, 0x53]) : Buffer.from([0x00, 0x28, element >> 8, element & 0xff, 0x55, 0x53]);
  const at = b.indexOf(tag, 132);
  if (at < 0) return;
  if (little) b.writeUInt16LE(value, at + 8);
  else b.writeUInt16BE(value, at + 8);
}

/** The mutations: byte flips in the pixel data, header sizes, truncation, and (RLE) segment tables claiming huge runs. */
function mutate(src: Buffer, rnd: () => number, little: boolean, i: number): { bytes: Buffer; what: string } {
  const b = Buffer.from(src);
  const pixelAt = b.lastIndexOf(little ? Buffer.from([0xe0, 0x7f, 0x10, 0x00]) : Buffer.from([0x7f, 0xe0, 0x00, 0x10]));
  const from = pixelAt > 0 ? pixelAt + 12 : 132;
  const pick = () => from + Math.floor(rnd() * Math.max(1, b.length - from));
  switch (i % 5) {
    case 0: {
      const n = 1 + Math.floor(rnd() * 32);
      for (let k = 0; k < n; k++) b[pick()] = Math.floor(rnd() * 256);
      return { bytes: b, what: `${n} bytes flipped` };
    }
    case 1: {
      const v = [0, 1, 3, 255, 4096, 65535][Math.floor(rnd() * 6)];
      patchUS(b, rnd() < 0.5 ? 0x0010 : 0x0011, v, little);
      return { bytes: b, what: `rows/columns=${v}` };
    }
    case 2: {
      patchUS(b, 0x0100, [1, 8, 12, 16, 32, 64][Math.floor(rnd() * 6)], little);
      for (let k = 0; k < 4; k++) b[pick()] ^= 0xff;
      return { bytes: b, what: 'bits allocated + flips' };
    }
    case 3: {
      const at = from + Math.floor(rnd() * Math.max(1, b.length - from));
      return { bytes: b.subarray(0, at), what: `truncated at ${at}` };
    }
    default: {
      // Repeat runs (-127 → 128 copies) everywhere after the first fragment's start; an RLE
      // header (PS3.5 §G.3.1) with 15 segments at random offsets.
      const item = b.indexOf(Buffer.from([0xfe, 0xff, 0x00, 0xe0]), from + 8);
      const start = item > 0 ? item + 8 : from;
      if (start + 64 < b.length) {
        b.writeUInt32LE(15, start);
        for (let s = 0; s < 15; s++) b.writeInt32LE(rnd() < 0.5 ? 64 + s : Math.floor(rnd() * 0x7fffffff) * (rnd() < 0.2 ? -1 : 1), start + 4 + 4 * s);
        for (let k = start + 64; k < b.length - 2; k += 2) {
          b[k] = 0x81;
          b[k + 1] = 0x00;
        }
      }
      return { bytes: b, what: 'RLE segments claiming huge runs' };
    }
  }
}

describe('decoding fuzz: mutated samples of every syntax through the one decoding entry point', () => {
  let pc: PixelCodec;
  const lag = monitorEventLoopDelay({ resolution: 20 });
  const tally: Record<string, Record<string, number>> = {};
  let rssBefore = 0;

  beforeAll(() => {
    pc = createPixelCodec(LIMITS);
    // The deflate bombs are made once, before the memory baseline.
    INFLATES_PAST_CAP = zlib.deflateRawSync(Buffer.alloc(70 * MiB));
    DEFLATE_BOMB = zlib.deflateRawSync(Buffer.alloc(200 * MiB), { level: 9 });
    global.gc?.();
    lag.enable();
    rssBefore = process.memoryUsage().rss;
  });
  afterAll(async () => {
    await pc?.close();
    console.log('decode fuzz outcomes:', JSON.stringify(tally));
  });

  /** Runs one attempt: a value within `bound` bytes, or a typed error, within the time limit. */
  async function attempt(name: string, bound: number, work: () => Promise<Buffer>): Promise<void> {
    const t0 = Date.now();
    let outcome: string;
    try {
      const out = await work();
      expect(out.length, name).toBeLessThanOrEqual(bound);
      outcome = 'ok';
    } catch (e) {
      if (!isTresorError(e) || !ALLOWED.has(e.reason)) throw new Error(`${name}: not a clean typed error: ${e instanceof Error ? `${e.name} ${e.message}` : String(e)}`, { cause: e });
      outcome = e.reason;
    }
    // The job's time limit plus a child's start-up limit (30 s; under tsx a child compiles
    // its modules, slow on a loaded machine), with some slack: bounded, not fast.
    expect(Date.now() - t0, name).toBeLessThan(30_000 + LIMITS.timeoutMs + 15_000);
    count(name.split(':')[0], outcome);
  }
  function count(label: string, outcome: string): void {
    tally[label] ??= {};
    tally[label][outcome] = (tally[label][outcome] ?? 0) + 1;
  }

  it(
    `${VARIANTS} variants per syntax: transcoded and rendered, each a bounded result or a clean error`,
    async () => {
      const rnd = prng(SEED);
      const jobs: (() => Promise<void>)[] = [];
      // Deflated objects are parsed by dcmjs in this process, after a bounded inflate and a
      // bounded parse-cost walk (inflate.ts): they run with the others, under the event-loop check.
      for (const [label, file, transcodable] of SAMPLES) {
        const jobs_ = jobs;
        const original = fs.readFileSync(D + file);
        const ts = readFileMeta(original)!.transferSyntaxUid!;
        expect(ts, file).toMatch(/^1\.2\.840\.10008\.1\.2/);
        const little = ts !== TS.explicitBig;
        for (let i = 0; i < VARIANTS; i++) {
          const { bytes, what } = ts === TS.deflatedExplicitLittle ? mutateDeflated(original, rnd, i) : mutate(original, rnd, little, i);
          const name = `${label}: ${file} #${i} (${what})`;
          // FUZZ_ONLY=<substring>: rerun one case (the mutations of the others are still drawn, so it is the same case).
          if (process.env.FUZZ_ONLY && !name.includes(process.env.FUZZ_ONLY)) continue;
          if (transcodable) {
            // The whole object, as WADO-RS/WADO-URI ask for it: the child checks the header it parses.
            jobs_.push(() => attempt(name, bytes.length + LIMITS.maxOutputBytes, () => pc.transcodeObject(undefined, async () => bytes, TS.explicitLittle)));
          }
          // One frame, as /rendered asks for it: read from the stored bytes the way the server
          // does (deflated objects are inflated here, bounded), then rendered in a child.
          jobs_.push(async () => {
            let header: Record<string, any>;
            let frame: Buffer;
            try {
              clearLayoutCache();
              // The catalogue's metadata, as ingest would have recorded it from these bytes.
              // (Deflated ones: the original's — dcmjs would inflate a mutated stream here, unbounded.)
              const metadata = metadataOf(ts === TS.deflatedExplicitLittle ? original : bytes);
              const src = await frameSource(stored(bytes, ts, `fuzz-${label}-${i}`), { transferSyntaxUid: ts, metadata } as any, [1]);
              header = await src.header();
              const chunks: Buffer[] = [];
              for await (const f of src.frames()) for await (const c of f.chunks) chunks.push(c);
              frame = Buffer.concat(chunks);
            } catch (e) {
              // A structure ingest's walk would refuse (or the bounded inflate refused): no decoding happened.
              count(label, isTresorError(e) ? e.reason : 'frame-unreadable');
              if (what === 'inflates past the cap') expect(isTresorError(e) && e.reason, name).toBe('stored-object-unreadable');
              return;
            }
            if (process.env.FUZZ_ONLY) console.log(name, 'frame', frame.length, 'header keys', Object.keys(header).length);
            const shape = shapeOfElements(dcmjs.data.DicomMetaDictionary.naturalizeDataset({ ...header }));
            const bound = Math.max(1 * MiB, promisedBytes({ ...shape, numberOfFrames: 1 }).frame);
            await attempt(`${name} render`, bound, () => pc.render(header, frame, isEncapsulated(ts) ? ts : TS.explicitLittle, { format: 'jpeg', viewport: { width: 64, height: 64 } }));
          });
        }
      }
      // Two at a time: both children busy, as under load.
      let next = 0;
      let running = '';
      let last = Date.now();
      const stalls: string[] = [];
      const tick = setInterval(() => {
        const now = Date.now();
        if (now - last > 1000) stalls.push(`${now - last} ms during ${running}`);
        last = now;
      }, 50);
      await Promise.all(
        [0, 1].map(async () => {
          while (next < jobs.length) {
            running = String(next);
            await jobs[next++]();
          }
        }),
      );
      clearInterval(tick);
      if (stalls.length) console.log('event loop stalls:', stalls);
      console.log('event loop max delay ms:', (lag.max / 1e6).toFixed(0));
      const lagMaxMs = lag.max / 1e6;
      lag.disable();
      const total = Object.values(tally).reduce((n, t) => n + Object.values(t).reduce((a, b) => a + b, 0), 0);
      expect(total).toBeGreaterThan(SAMPLES.length * VARIANTS);
      // Some mutations still decode (the decoders are exercised, not only the refusals).
      expect(Object.values(tally).reduce((n, t) => n + (t.ok ?? 0), 0)).toBeGreaterThan(SAMPLES.length);
      // Nothing decoded in this process: its memory barely moved, its event loop never stalled.
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(300 * MiB);
      // A decoder or an unbounded parse in this process would stall it for seconds to minutes;
      // 1 s leaves room for a shared, loaded machine.
      expect(lagMaxMs).toBeLessThan(1_000);
    },
    180_000,
  );

  it('a deflate bomb (200 MiB of zeros in 200 KB) is refused without being inflated in memory', async () => {
    const original = fs.readFileSync(D + 'image_dfl.dcm');
    const datasetAt = 132 + 12 + original.readUInt32LE(140);
    const bomb = Buffer.concat([original.subarray(0, datasetAt), DEFLATE_BOMB]);
    expect(bomb.length).toBeLessThan(1 * MiB);
    const before = process.memoryUsage().rss;
    const err = await frameSource(stored(bomb, TS.deflatedExplicitLittle, 'deflate-bomb'), { transferSyntaxUid: TS.deflatedExplicitLittle, metadata: {} } as any, [1]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isTresorError(err) && err.reason).toBe('stored-object-unreadable');
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * MiB);
  });

  it('deflated data sets shaped to make the parse slow (millions of tiny elements, megabytes of numbers) are refused before dcmjs parses them, without stalling', async () => {
    const original = fs.readFileSync(D + 'image_dfl.dcm');
    const datasetAt = 132 + 12 + original.readUInt32LE(140);
    const n = 60 * MiB;
    // 7.8 million empty US elements (dcmjs: 3.9 s on the event loop), ~960 US values of 64 KiB (1.5 s, 800 MiB),
    // 7.8 million empty sequence items (0.9 s).
    const tiny = Buffer.alloc(n);
    for (let p = 0; p < n; p += 8) tiny.write('\x09\x00\x00\x10US\x00\x00', p, 'latin1');
    const per = 8 + 65534;
    const numbers = Buffer.alloc(Math.floor(n / per) * per);
    for (let p = 0; p < numbers.length; p += per) {
      numbers.write('\x09\x00\x00\x10US', p, 'latin1');
      numbers.writeUInt16LE(65534, p + 6);
    }
    const items = Buffer.alloc(n + 12);
    items.write('\x09\x00\x10\x10SQ\x00\x00\xff\xff\xff\xff', 0, 'latin1');
    for (let p = 12; p < items.length; p += 8) items.write('\xfe\xff\x00\xe0\x00\x00\x00\x00', p, 'latin1');
    for (const [what, dataset] of [['tiny elements', tiny], ['numbers', numbers], ['items', items]] as const) {
      const bomb = Buffer.concat([original.subarray(0, datasetAt), zlib.deflateRawSync(dataset)]);
      const h = monitorEventLoopDelay({ resolution: 10 });
      h.enable();
      const err = await frameSource(stored(bomb, TS.deflatedExplicitLittle, `deflate-${what}`), { transferSyntaxUid: TS.deflatedExplicitLittle, metadata: {} } as any, [1]).then(
        () => undefined,
        (e: unknown) => e,
      );
      // Ingest's parser (STOW-RS, C-STORE) refuses it the same way: before dcmjs parses it.
      const file = path.join(os.tmpdir(), `tresor-fuzz-${process.pid}-${what.replace(/ /g, '-')}.dcm`);
      fs.writeFileSync(file, bomb);
      const ingestErr = await parsePart10File(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      fs.rmSync(file);
      h.disable();
      expect(isTresorError(err) && err.reason, what).toBe('stored-object-unreadable');
      expect(isTresorError(ingestErr) && ingestErr.reason, what).toBe('deflated-too-large');
      expect(h.max / 1e6, what).toBeLessThan(1_000);
    }
    // The same walk passes the real sample (it is what ingest and retrieval parse).
    const c = await inflatePart10(original, datasetAt);
    expect(c.ok).toBe(true);
  });

  it('a header that promises more than the cap is refused before a byte is read', async () => {
    let read = false;
    const err = await pc
      .transcodeObject({ rows: 4096, columns: 4096, samplesPerPixel: 3, bitsAllocated: 16, numberOfFrames: 1000 }, async () => {
        read = true;
        return Buffer.alloc(0);
      }, TS.explicitLittle)
      .catch((e: unknown) => e);
    expect(isTresorError(err) && err.reason).toBe('decode-too-large');
    expect(read).toBe(false);
  });
});

/** Deflated samples: flips in the deflate stream, or a stream that inflates far beyond the cap. */
function mutateDeflated(src: Buffer, rnd: () => number, i: number): { bytes: Buffer; what: string } {
  const datasetAt = 132 + 12 + src.readUInt32LE(140);
  if (i % 3 === 2) {
    return { bytes: Buffer.concat([src.subarray(0, datasetAt), INFLATES_PAST_CAP]), what: 'inflates past the cap' };
  }
  if (i % 3 === 1) {
    // Damage inside the data set (header sizes, pixel bytes, truncation), deflated again:
    // the stream is valid, so dcmjs parses what the walk lets through and a child renders it.
    const inflated = Buffer.concat([src.subarray(0, 132), zlib.inflateRawSync(src.subarray(datasetAt))]);
    const { bytes, what } = mutate(inflated, rnd, true, Math.floor(rnd() * 4));
    return { bytes: Buffer.concat([src.subarray(0, datasetAt), zlib.deflateRawSync(bytes.subarray(132))]), what: `${what}, deflated again` };
  }
  const b = Buffer.from(src);
  const n = 1 + Math.floor(rnd() * 8);
  for (let k = 0; k < n; k++) b[datasetAt + Math.floor(rnd() * (b.length - datasetAt))] = Math.floor(rnd() * 256);
  return { bytes: b, what: `${n} bytes flipped in the deflate stream` };
}

/** The attributes (DICOM JSON, as ingest indexes them) of an object, read the way ingest reads them. */
function metadataOf(bytes: Buffer): Record<string, any> {
  const d = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), { ignoreErrors: true, untilTag: '7FE00010', includeUntilTagValue: false } as any);
  return { ...d.dict, '7FE00010': { vr: 'OB' } };
}

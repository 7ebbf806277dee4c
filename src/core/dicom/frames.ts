// Frames and bulk data from a stored Part 10 object, in bounded memory, for WADO-RS
// /frames, /bulkdata and /rendered (PS3.18 §10.4). The blob store has no ranged
// read (core/ports/blob-store.ts), so everything here works on a forward-only stream:
//
// 1. locate: walk.ts (the structural walker ingest already trusts) runs over the
//    stream through a forward-only "file handle", reading element headers and
//    discarding values, so Pixel Data is located without holding the object. The
//    result is cached per object key: keys are server-generated, never reused, and
//    blobs are immutable, so a layout can never go stale.
// 2. read: the requested byte ranges are read from a fresh stream in ascending
//    order, skipping what lies between them.
//
// Cost: finding frame k of a 1 GB object reads the blob up to that frame (sequential
// I/O, constant memory). A ranged read in BlobStore (core/ports/blob-store.ts) would
// make it O(frame size). Deflated objects (≤ 64 MiB, see parse.ts) are inflated in memory.

import { silenceDcmjs } from './dcmjs-quiet.js';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import dcmjs from 'dcmjs';
import { invalid, notFound, unavailable } from '../errors.js';
import { firstInt, type DicomJson } from './json.js';
import { PREAMBLE_LENGTH } from './part10.js';
import { isEncapsulated, TS } from './uids.js';
import { walkDataset, type Fragment } from './walk.js';

silenceDcmjs(dcmjs);

export interface StoredObject {
  /** Cache key: the server-generated object key (immutable content). */
  key: string;
  size: number;
  transferSyntaxUid: string;
  /** DICOM JSON without bulk data (from the database). */
  metadata: DicomJson;
  open(): Promise<Readable>;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface PixelLayout {
  /** Offset of the Pixel Data element header (end of the attributes before it); size when there is none. */
  headerEnd: number;
  /** Offset of the dataset after the File Meta Information. */
  datasetOffset: number;
  pixel?:
    | { kind: 'native'; valueOffset: number; length: number }
    | { kind: 'encapsulated'; basicOffsetTable?: Fragment; fragments: Fragment[]; botOffsets?: number[] };
}

export interface ImagePixelModule {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  numberOfFrames: number;
  photometricInterpretation: string;
}

/** Most frames one request may name. */
export const MAX_FRAMES_PER_REQUEST = 10_000;
const LAYOUT_CACHE_SIZE = 1024;
const layoutCache = new Map<string, PixelLayout>();

function cachePut(key: string, l: PixelLayout): void {
  layoutCache.delete(key);
  layoutCache.set(key, l);
  while (layoutCache.size > LAYOUT_CACHE_SIZE) layoutCache.delete(layoutCache.keys().next().value as string);
}

/**
 * A forward-only stand-in for FileHandle.read over a stream. walk.ts reads at
 * non-decreasing positions (each window reload starts past the previous one), so
 * bytes before the last read position can be dropped; memory stays at one window.
 */
class ForwardReader {
  private chunks: Buffer[] = [];
  private bufStart = 0; // file offset of chunks[0][0]
  private bufLen = 0;
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(stream: Readable) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.chunks.push(b);
    this.bufLen += b.length;
    return true;
  }

  private drop(upTo: number): void {
    while (this.chunks.length && this.bufStart + this.chunks[0].length <= upTo) {
      this.bufStart += this.chunks[0].length;
      this.bufLen -= this.chunks[0].length;
      this.chunks.shift();
    }
  }

  /** Skips to `pos` and returns up to `n` bytes from there (fewer at the end). */
  async take(pos: number, n: number): Promise<Buffer> {
    if (pos < this.bufStart) throw new Error('ForwardReader: backward read');
    for (;;) {
      this.drop(pos);
      if (this.bufStart + this.bufLen >= pos + n) break;
      if (!(await this.pull())) break;
    }
    this.drop(pos);
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = all.length ? [all] : [];
    const from = pos - this.bufStart;
    return from >= all.length ? Buffer.alloc(0) : all.subarray(from, Math.min(all.length, from + n));
  }

  /** Yields the bytes of `range` (which must not start before earlier ranges). */
  async *range(r: ByteRange): AsyncGenerator<Buffer> {
    let pos = r.offset;
    const end = r.offset + r.length;
    while (pos < end) {
      const b = await this.take(pos, Math.min(1 << 20, end - pos));
      if (b.length === 0) throw unavailable('blob-truncated', 'The stored object is shorter than its index says.');
      pos += b.length;
      yield b;
    }
  }

  /** FileHandle.read, as walk.ts calls it. */
  async read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number; buffer: Buffer }> {
    const b = await this.take(pos, len);
    b.copy(buf, off);
    return { bytesRead: b.length, buffer: buf };
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

async function readPrefix(o: StoredObject, n: number): Promise<Buffer> {
  const r = new ForwardReader(await o.open());
  try {
    return Buffer.from(await r.take(0, n));
  } finally {
    await r.close();
  }
}

/** Where the File Meta Information ends (PS3.10 §7.1); ingest already validated it. */
function datasetOffsetOf(head: Buffer): number {
  if (head.length < PREAMBLE_LENGTH + 16 || head.toString('latin1', 128, 132) !== 'DICM') throw unavailable('stored-object-unreadable', 'The stored object is not Part 10.');
  return 144 + head.readUInt32LE(140);
}

/** Locates Pixel Data in a stored object (cached per object key). */
export async function pixelLayout(o: StoredObject): Promise<PixelLayout> {
  const cached = layoutCache.get(o.key);
  if (cached) return cached;
  if (o.transferSyntaxUid === TS.deflatedExplicitLittle) throw new Error('pixelLayout: deflated objects are read whole');
  const head = await readPrefix(o, PREAMBLE_LENGTH + 16);
  const datasetOffset = datasetOffsetOf(head);
  const reader = new ForwardReader(await o.open());
  let layout: PixelLayout;
  try {
    const { pixelData } = await walkDataset(reader as unknown as FileHandle, o.size, datasetOffset, o.transferSyntaxUid);
    if (!pixelData) layout = { headerEnd: o.size, datasetOffset };
    else if (pixelData.length !== undefined) {
      layout = { headerEnd: pixelData.elementOffset, datasetOffset, pixel: { kind: 'native', valueOffset: pixelData.valueOffset, length: pixelData.length } };
    } else {
      layout = {
        headerEnd: pixelData.elementOffset,
        datasetOffset,
        pixel: { kind: 'encapsulated', basicOffsetTable: pixelData.basicOffsetTable, fragments: pixelData.fragments ?? [] },
      };
    }
  } finally {
    await reader.close();
  }
  cachePut(o.key, layout);
  return layout;
}

export function imagePixelModule(metadata: DicomJson): ImagePixelModule {
  return {
    rows: firstInt(metadata, '00280010') ?? 0,
    columns: firstInt(metadata, '00280011') ?? 0,
    samplesPerPixel: firstInt(metadata, '00280002') ?? 1,
    bitsAllocated: firstInt(metadata, '00280100') ?? 0,
    numberOfFrames: Math.max(1, firstInt(metadata, '00280008') ?? 1),
    photometricInterpretation: String(metadata['00280004']?.Value?.[0] ?? '').trim(),
  };
}

/** Parses a PS3.18 §8.3.3 frame list ("1,3,5", 1-based); throws invalid on anything else. */
export function parseFrameList(s: string): number[] {
  if (!/^\d{1,9}(,\d{1,9})*$/.test(s)) throw invalid('bad-frame-list', 'Frame numbers are positive integers separated by commas.');
  const frames = s.split(',').map(Number);
  if (frames.length > MAX_FRAMES_PER_REQUEST) throw invalid('bad-frame-list', 'Too many frames in one request.');
  if (frames.some((f) => f < 1)) throw invalid('bad-frame-list', 'Frame numbers start at 1.');
  return frames;
}

/** Byte length of one native frame, in bits (1-bit images pack frames without padding, PS3.5 §8.1.1). */
function frameBits(m: ImagePixelModule): number {
  // PS3.3 C.7.6.3.1.2: uncompressed YBR_FULL_422 stores two values per pixel.
  const samples = m.photometricInterpretation === 'YBR_FULL_422' ? 2 : m.samplesPerPixel;
  return m.rows * m.columns * samples * m.bitsAllocated;
}

export interface FramePlan {
  /** 1-based frame number. */
  frame: number;
  /** Byte ranges in the stored object, in order (one for native, one per fragment for encapsulated). */
  ranges: ByteRange[];
  /** Native 1-bit frames that do not start on a byte boundary: bit offset into the first byte. */
  bitShift?: number;
  /** Bytes of the frame after any bit shifting (native). */
  length: number;
}

/**
 * Which bytes make up each requested frame. Frames that do not exist are not-found
 * (PS3.18 §10.4.1.1.3: a frame list naming absent frames fails).
 */
export function planFrames(layout: PixelLayout, m: ImagePixelModule, frames: number[]): FramePlan[] {
  const pixel = layout.pixel;
  if (!pixel) throw notFound('no-pixel-data', 'This instance has no pixel data.');
  for (const f of frames) if (f > m.numberOfFrames) throw notFound('no-such-frame', 'A requested frame does not exist.');
  if (pixel.kind === 'native') {
    const bits = frameBits(m);
    if (bits <= 0) throw unavailable('bad-image-pixel-module', 'The image pixel attributes are incomplete.');
    return frames.map((f) => {
      const startBit = (f - 1) * bits;
      const byteStart = Math.floor(startBit / 8);
      const shift = startBit % 8;
      const length = Math.ceil(bits / 8);
      const span = Math.ceil((shift + bits) / 8);
      if (byteStart + span > pixel.length) throw notFound('no-such-frame', 'A requested frame does not exist.');
      return { frame: f, ranges: [{ offset: pixel.valueOffset + byteStart, length: span }], length, ...(shift ? { bitShift: shift } : {}) };
    });
  }
  const groups = fragmentsPerFrame(pixel.fragments, pixel.basicOffsetTable, pixel.botOffsets, m.numberOfFrames);
  return frames.map((f) => {
    const ranges = groups[f - 1];
    if (!ranges?.length) throw notFound('no-such-frame', 'A requested frame does not exist.');
    return { frame: f, ranges, length: ranges.reduce((n, r) => n + r.length, 0) };
  });
}

/**
 * Groups fragments into frames (PS3.5 §A.4): one frame → all fragments; otherwise
 * the Basic Offset Table (offsets of each frame's first item, from the first item
 * after the table); otherwise one fragment per frame when the counts agree.
 */
function fragmentsPerFrame(fragments: Fragment[], bot: Fragment | undefined, botOffsets: number[] | undefined, frames: number): ByteRange[][] {
  if (frames === 1) return [fragments];
  if (botOffsets && botOffsets.length === frames && fragments.length) {
    const base = fragments[0].offset - 8; // item tag of the first fragment
    const groups: ByteRange[][] = Array.from({ length: frames }, () => []);
    let k = 0;
    for (const fr of fragments) {
      const rel = fr.offset - 8 - base;
      while (k + 1 < frames && rel >= botOffsets[k + 1]) k++;
      groups[k].push(fr);
    }
    return groups;
  }
  if (fragments.length === frames) return fragments.map((f) => [f]);
  if (bot && bot.length > 0) throw unavailable('bot-unread', 'Basic Offset Table not loaded.');
  throw unavailable('frame-boundaries-unknown', 'The frames of this instance cannot be told apart (no offset table).');
}

/** Reads the Basic Offset Table (when there is one) into the layout, so frames can be grouped. */
export async function withOffsetTable(o: StoredObject, layout: PixelLayout): Promise<PixelLayout> {
  const pixel = layout.pixel;
  if (pixel?.kind !== 'encapsulated' || !pixel.basicOffsetTable || pixel.basicOffsetTable.length === 0) return layout;
  if (pixel.botOffsets) return layout;
  const bot = pixel.basicOffsetTable;
  if (bot.length % 4 !== 0 || bot.length > 4 * 1_000_000) return layout;
  const chunks: Buffer[] = [];
  for await (const c of readRanges(o, [bot])) chunks.push(c.data);
  const b = Buffer.concat(chunks);
  const little = o.transferSyntaxUid !== TS.explicitBig;
  const offsets: number[] = [];
  for (let i = 0; i < b.length; i += 4) offsets.push(little ? b.readUInt32LE(i) : b.readUInt32BE(i));
  const withBot: PixelLayout = { ...layout, pixel: { ...pixel, botOffsets: offsets } };
  cachePut(o.key, withBot);
  return withBot;
}

/**
 * Streams the given ranges of a stored object. Ranges must be in ascending,
 * non-overlapping order; each chunk says which range it belongs to.
 */
export async function* readRanges(o: StoredObject, ranges: ByteRange[]): AsyncGenerator<{ index: number; data: Buffer }> {
  const reader = new ForwardReader(await o.open());
  try {
    for (let i = 0; i < ranges.length; i++) {
      for await (const data of reader.range(ranges[i])) yield { index: i, data };
    }
  } finally {
    await reader.close();
  }
}

/**
 * The bytes of each planned frame, in the order requested. Consecutive ascending
 * frames share one pass over the blob; a frame before the previous one reopens it.
 * Native big-endian data (OW words) is swapped to little endian (the frame media type's
 * default, PS3.18 §8.7.3.3.2); 1-bit frames are realigned to a byte boundary.
 */
export async function* frameBytes(o: StoredObject, plans: FramePlan[], m: ImagePixelModule): AsyncGenerator<{ plan: FramePlan; chunks: AsyncIterable<Buffer> }> {
  // Explicit VR Big Endian: OW words are swapped to little endian (PS3.5 §7.3), by the word size.
  // 1-bit data is OB (bytes, nothing to swap), like pydicom's liver_expb_1frame.dcm.
  const swapBits = o.transferSyntaxUid === TS.explicitBig && m.bitsAllocated > 8 ? m.bitsAllocated : 0;
  const swap = swapBits > 0;
  let i = 0;
  while (i < plans.length) {
    // One ascending run.
    let j = i + 1;
    while (j < plans.length && plans[j].ranges[0].offset >= lastEnd(plans[j - 1])) j++;
    const run = plans.slice(i, j);
    const reader = new ForwardReader(await o.open());
    try {
      for (const plan of run) {
        if (swap || plan.bitShift) {
          const parts: Buffer[] = [];
          for (const r of plan.ranges) for await (const c of reader.range(r)) parts.push(c);
          let b: Buffer = Buffer.concat(parts);
          if (plan.bitShift) b = shiftBits(b, plan.bitShift, plan.length);
          if (swap) b = swapWords(Buffer.from(b), swapBits);
          yield { plan, chunks: single(b) };
        } else {
          yield { plan, chunks: rangesOf(reader, plan.ranges) };
        }
      }
    } finally {
      await reader.close();
    }
    i = j;
  }
}

function swapWords(b: Buffer, bits: number): Buffer {
  if (bits === 16 && b.length % 2 === 0) return b.swap16();
  if (bits === 32 && b.length % 4 === 0) return b.swap32();
  if (bits === 64 && b.length % 8 === 0) return b.swap64();
  return b;
}

async function* single(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

async function* rangesOf(reader: ForwardReader, ranges: ByteRange[]): AsyncGenerator<Buffer> {
  for (const r of ranges) yield* reader.range(r);
}

const lastEnd = (p: FramePlan) => {
  const r = p.ranges[p.ranges.length - 1];
  return r.offset + r.length;
};

/** 1-bit data: drop `shift` leading bits (bits are packed least significant first, PS3.5 §D.2). */
function shiftBits(b: Buffer, shift: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let k = 0; k < length; k++) out[k] = ((b[k] >> shift) | ((b[k + 1] ?? 0) << (8 - shift))) & 0xff;
  return out;
}

/** The attributes before Pixel Data as a dcmjs dictionary (≤ 64 MiB, see parse.ts). */
export async function readHeaderDict(o: StoredObject, layout?: PixelLayout): Promise<{ dict: Record<string, any>; meta: Record<string, any> }> {
  const whole = o.transferSyntaxUid === TS.deflatedExplicitLittle;
  const end = whole ? o.size : (layout ?? (await pixelLayout(o))).headerEnd;
  const buf = await readPrefix(o, end);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  try {
    const d = dcmjs.data.DicomMessage.readFile(ab, { ignoreErrors: true } as any);
    return { dict: d.dict, meta: d.meta };
  } catch {
    throw unavailable('stored-object-unreadable', 'The stored object could not be parsed.');
  }
}

/** Deflated objects (at most 64 MiB, parse.ts): the whole file, parsed by dcmjs, which inflates it. */
export async function readDeflated(o: StoredObject): Promise<Record<string, any>> {
  return (await readHeaderDict(o)).dict;
}

/**
 * Follows a bulk data tag path ("00081140/0/00081150" style, as written by json.ts)
 * into a dcmjs dictionary and returns the binary value.
 */
export function bulkValueAt(dict: Record<string, any>, path: string[]): Buffer {
  let node: Record<string, any> = dict;
  for (let i = 0; i < path.length; i++) {
    const el = node[path[i]];
    if (!el) throw notFound('no-such-bulkdata', 'No such bulk data.');
    if (i === path.length - 1) {
      const vals: unknown[] = Array.isArray(el.Value) ? el.Value : [];
      const bufs = vals.filter((v): v is ArrayBuffer => v instanceof ArrayBuffer).map((v) => Buffer.from(v));
      if (bufs.length === 0) throw notFound('no-such-bulkdata', 'No such bulk data.');
      return Buffer.concat(bufs);
    }
    const item = el.Value?.[Number(path[++i])];
    if (!item || typeof item !== 'object') throw notFound('no-such-bulkdata', 'No such bulk data.');
    node = item;
  }
  throw notFound('no-such-bulkdata', 'No such bulk data.');
}

/** Native pixel data of a deflated object, per frame. */
export function deflatedFrame(dict: Record<string, any>, m: ImagePixelModule, frame: number): Buffer {
  const pd = dict['7FE00010']?.Value?.[0];
  if (!(pd instanceof ArrayBuffer)) throw notFound('no-pixel-data', 'This instance has no pixel data.');
  const all = Buffer.from(pd);
  const bits = frameBits(m);
  const start = (frame - 1) * bits;
  if (frame > m.numberOfFrames || Math.ceil((start + bits) / 8) > all.length) throw notFound('no-such-frame', 'A requested frame does not exist.');
  const byteStart = Math.floor(start / 8);
  const shift = start % 8;
  const span: Buffer = all.subarray(byteStart, byteStart + Math.ceil((shift + bits) / 8));
  return shift ? shiftBits(span, shift, Math.ceil(bits / 8)) : Buffer.from(span);
}

export { isEncapsulated };

/**
 * At most `n` holders at a time; the others wait in order. Rendering and transcoding
 * hold a frame or a whole object in memory, so their concurrency is what bounds it.
 */
export function semaphore(n: number): <T>(work: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (work) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await work();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/** For tests: forget cached layouts. */
export function clearLayoutCache(): void {
  layoutCache.clear();
}

export function streamOf(chunks: AsyncIterable<Buffer>): Readable {
  return Readable.from(chunks, { objectMode: false });
}

// Which bytes of a stored object make up each requested frame (PS3.18 §10.4.1.1.3
// /frames): the frame list, the Image Pixel Module attributes that size a native
// frame, and the grouping of encapsulated fragments into frames (PS3.5 §A.4).

import { invalid, notFound, unavailable } from '../../errors.js';
import { firstInt, type DicomJson } from '../json.js';
import type { Fragment } from '../walk.js';
import type { PixelLayout } from './layout.js';
import type { ByteRange } from './stream-reader.js';

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
export function frameBits(m: ImagePixelModule): number {
  // PS3.3 C.7.6.3.1.2: uncompressed YBR_FULL_422 stores two values per pixel.
  const samples = m.photometricInterpretation === 'YBR_FULL_422' ? 2 : m.samplesPerPixel;
  return m.rows * m.columns * samples * m.bitsAllocated;
}

/** 1-bit data: drop `shift` leading bits (bits are packed least significant first, PS3.5 §D.2). */
export function shiftBits(b: Buffer, shift: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let k = 0; k < length; k++) out[k] = ((b[k] >> shift) | ((b[k + 1] ?? 0) << (8 - shift))) & 0xff;
  return out;
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

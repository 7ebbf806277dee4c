// The bytes of planned frames, streamed from the stored object in bounded memory
// (PS3.18 §10.4 /frames, /rendered), and the frames of a deflated object, which
// is read whole (≤ 64 MiB, see parse.ts).

import { notFound } from '../../errors.js';
import { TS } from '../transfer-syntaxes.js';
import { frameBits, shiftBits, type FramePlan, type ImagePixelModule } from './frame-plan.js';
import { ForwardReader, type ByteRange, type StoredObject } from './stream-reader.js';

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

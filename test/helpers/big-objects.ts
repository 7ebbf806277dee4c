// Large synthetic instances for tests of how stored objects are read and sent in chunks
// (src/lib/read-chunks.ts): CT_small.dcm's header over random pixels, so that any byte
// out of place is seen. No patient data.

import { randomBytes } from 'node:crypto';
import { reissuedCtSmall } from './ct-series.js';

/** A Part 10 CT of `rows` × 512 random 16-bit pixels, explicit VR little endian, in the given study and series. */
export function bigCt(study: string, series: string, rows: number): Buffer {
  const d = reissuedCtSmall(study, series);
  d.dict['00100010'] = { vr: 'PN', Value: [{ Alphabetic: 'Chunks^Test' }] };
  d.dict['00280010'] = { vr: 'US', Value: [rows] };
  d.dict['00280011'] = { vr: 'US', Value: [512] };
  const px = randomBytes(rows * 512 * 2);
  d.dict['7FE00010'] = { vr: 'OW', Value: [px.buffer.slice(px.byteOffset, px.byteOffset + px.length)] };
  return Buffer.from(d.write());
}

/** 150 KB to 3 MB: one to three 1 MiB read chunks each, none a multiple of a chunk or of a PDV. */
export const BIG_CT_ROWS = [151, 203, 587, 1031, 1100, 1500, 2100, 2900];

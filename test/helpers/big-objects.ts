// Large synthetic instances for tests of how stored objects are read and sent in chunks
// (src/lib/read-chunks.ts): CT_small.dcm's header over random pixels, so that any byte
// out of place is seen. No patient data.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import dcmjs from '../../src/core/dicom/dcmjs.js';
import { freshUid } from './dicomweb-data.js';
import { SAMPLE_DIR } from './samples.js';

/** A Part 10 CT of `rows` × 512 random 16-bit pixels, explicit VR little endian, in the given study and series. */
export function bigCt(study: string, series: string, rows: number): Buffer {
  const sample = readFileSync(`${SAMPLE_DIR}/CT_small.dcm`);
  const d = dcmjs.data.DicomMessage.readFile(sample.buffer.slice(sample.byteOffset, sample.byteOffset + sample.length));
  const sop = freshUid();
  d.dict['0020000D'].Value = [study];
  d.dict['0020000E'].Value = [series];
  d.dict['00080018'].Value = [sop];
  d.meta['00020003'].Value = [sop];
  d.meta['00020010'].Value = ['1.2.840.10008.1.2.1'];
  d.dict['00100010'] = { vr: 'PN', Value: [{ Alphabetic: 'Chunks^Test' }] };
  d.dict['00280010'] = { vr: 'US', Value: [rows] };
  d.dict['00280011'] = { vr: 'US', Value: [512] };
  const px = randomBytes(rows * 512 * 2);
  d.dict['7FE00010'] = { vr: 'OW', Value: [px.buffer.slice(px.byteOffset, px.byteOffset + px.length)] };
  return Buffer.from(d.write());
}

/** 150 KB to 3 MB: one to three 1 MiB read chunks each, none a multiple of a chunk or of a PDV. */
export const BIG_CT_ROWS = [151, 203, 587, 1031, 1100, 1500, 2100, 2900];

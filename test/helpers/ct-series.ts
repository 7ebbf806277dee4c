// A synthetic multi-slice CT series for viewer tests: CT_small.dcm's header (128×128,
// signed 16-bit, rescale intercept -1024) re-issued as `count` slices 5 mm apart with
// fresh UIDs, and pixel data drawn per slice: a sphere whose cross-section grows and
// shrinks along z (so MPR shows a disc in every plane) and a bar whose position moves
// with the slice index (so scrolling changes the image visibly). No patient data.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import dcmjs from '../../src/core/dicom/dcmjs.js';
import { freshUid } from './dicomweb-data.js';
import { SAMPLE_DIR } from './samples.js';

export interface CtSeries {
  study: string;
  series: string;
  /** Part 10 bytes of each slice, in slice order. */
  slices: Buffer[];
}

const SIZE = 128;
const HU = (hu: number) => hu + 1024; // stored value for a Hounsfield unit (intercept -1024, slope 1)

function slicePixels(i: number, count: number): Buffer {
  const px = Buffer.alloc(SIZE * SIZE * 2);
  const zc = (count - 1) / 2;
  const radius = 50;
  const dz = ((i - zc) / Math.max(zc, 1)) * radius;
  const r2 = radius * radius - dz * dz;
  const barX = 10 + Math.round((i * (SIZE - 30)) / Math.max(count - 1, 1));
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      let hu = -1000; // air
      const dx = x - SIZE / 2;
      const dy = y - SIZE / 2;
      if (dx * dx + dy * dy < 60 * 60) hu = 40 + ((x + y) % 16) * 4; // soft tissue with texture
      if (r2 > 0 && dx * dx + dy * dy < r2) hu = 700; // bone-like sphere
      if (x >= barX && x < barX + 8 && y > 8 && y < 24) hu = 1000; // the moving marker
      px.writeInt16LE(HU(hu), (y * SIZE + x) * 2);
    }
  }
  return px;
}

let ctSmall: Buffer | undefined;

/** CT_small.dcm as a new instance of `study` and `series` (dcmjs's dict): a fresh SOP Instance UID, Explicit VR Little Endian. */
export function reissuedCtSmall(study: string, series: string) {
  const sample = (ctSmall ??= fs.readFileSync(`${SAMPLE_DIR}/CT_small.dcm`));
  const d = dcmjs.data.DicomMessage.readFile(sample.buffer.slice(sample.byteOffset, sample.byteOffset + sample.length));
  const sop = freshUid();
  d.dict['0020000D'].Value = [study];
  d.dict['0020000E'].Value = [series];
  d.dict['00080018'].Value = [sop];
  d.meta['00020003'].Value = [sop];
  d.meta['00020010'].Value = ['1.2.840.10008.1.2.1'];
  return d;
}

export function ctSeries(count = 20): CtSeries {
  const study = freshUid();
  const series = freshUid();
  const slices: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const d = reissuedCtSmall(study, series);
    const z = -75 + i * 5;
    d.dict['00100010'] = { vr: 'PN', Value: [{ Alphabetic: 'Phantom^Viewer' }] };
    d.dict['00100020'] = { vr: 'LO', Value: ['PHANTOM-1'] };
    d.dict['00200013'] = { vr: 'IS', Value: [i + 1] };
    d.dict['00200032'] = { vr: 'DS', Value: [-42.3, -42.3, z] };
    d.dict['00280030'] = { vr: 'DS', Value: [0.661468, 0.661468] };
    d.dict['00180050'] = { vr: 'DS', Value: [5] };
    d.dict['00201041'] = { vr: 'DS', Value: [z] };
    d.dict['00281050'] = { vr: 'DS', Value: [100] };
    d.dict['00281051'] = { vr: 'DS', Value: [1200] };
    d.dict['0008103E'] = { vr: 'LO', Value: ['Phantom axial'] };
    const pixels = slicePixels(i, count);
    d.dict['7FE00010'] = { vr: 'OW', Value: [pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + pixels.length)] };
    slices.push(Buffer.from(d.write()));
  }
  return { study, series, slices };
}

/** The same slices, JPEG-LS lossless (dcmtk's dcmcjpls): decoded in the browser by a WebAssembly codec. */
export function jpegLs(series: CtSeries): CtSeries {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-jls-'));
  try {
    const slices = series.slices.map((bytes, i) => {
      const src = path.join(dir, `${i}.dcm`);
      const dst = path.join(dir, `${i}.jls.dcm`);
      fs.writeFileSync(src, bytes);
      execFileSync('dcmcjpls', [src, dst]);
      return fs.readFileSync(dst);
    });
    return { ...series, slices };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

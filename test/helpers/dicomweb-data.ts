// DICOM objects made for DICOMweb tests: a pydicom sample re-issued under fresh UIDs
// (so each test stores something new), and a large multi-frame instance produced as a
// stream, never held in memory or written to disk.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import dcmjs from '../../src/core/dicom/dcmjs.js';
import { SAMPLE_DIR } from './samples.js';

let seq = 0;
/** A UID nobody else uses (2.25 = UUID-derived root, PS3.5 §B.2). */
export function freshUid(): string {
  return `2.25.${BigInt(`0x${randomBytes(12).toString('hex')}`)}${++seq}`;
}

/**
 * CT_small.dcm (or another sample) with new Study/Series/SOP Instance UIDs, written by
 * dcmjs as Explicit VR Little Endian Part 10 bytes.
 */
export function reissue(sample = 'CT_small.dcm', uids: { study?: string; series?: string; sop?: string } = {}): { bytes: Buffer; study: string; series: string; sop: string } {
  const b = fs.readFileSync(`${SAMPLE_DIR}/${sample}`);
  const d = dcmjs.data.DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  const study = uids.study ?? freshUid();
  const series = uids.series ?? freshUid();
  const sop = uids.sop ?? freshUid();
  d.dict['0020000D'].Value = [study];
  d.dict['0020000E'].Value = [series];
  d.dict['00080018'].Value = [sop];
  d.meta['00020003'].Value = [sop];
  d.meta['00020010'].Value = ['1.2.840.10008.1.2.1'];
  return { bytes: Buffer.from(d.write()), study, series, sop };
}

function el(group: number, element: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const str = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

export interface BigInstance {
  study: string;
  series: string;
  sop: string;
  frames: number;
  frameBytes: number;
  /** Total size of the Part 10 object. */
  size: number;
  /** The header (everything before the Pixel Data value). */
  header: Buffer;
  /** Byte `i` of frame `f` (1-based) is frameByte(f, i): cheap to regenerate and check. */
  stream(): Readable;
}

export const frameByte = (f: number, i: number): number => (f * 31 + i) & 0xff;

/**
 * A multi-frame Secondary Capture instance (8-bit MONOCHROME2, 1024 × 1024 per frame,
 * Explicit VR Little Endian) of about `totalBytes`, generated frame by frame.
 */
export function bigInstance(totalBytes: number): BigInstance {
  const rows = 1024;
  const cols = 1024;
  const frameBytes = rows * cols;
  const frames = Math.max(1, Math.floor(totalBytes / frameBytes));
  const study = freshUid();
  const series = freshUid();
  const sop = freshUid();
  const sopClass = '1.2.840.10008.5.1.4.1.1.7.2'; // Multi-frame Grayscale Byte SC
  const meta = Buffer.concat([
    el(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    el(0x0002, 0x0002, 'UI', str(sopClass, '\0')),
    el(0x0002, 0x0003, 'UI', str(sop, '\0')),
    el(0x0002, 0x0010, 'UI', str('1.2.840.10008.1.2.1', '\0')),
    el(0x0002, 0x0012, 'UI', str('1.2.826.0.1.3680043.10.1376.99', '\0')),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(meta.length);
  const dataset = Buffer.concat([
    el(0x0008, 0x0016, 'UI', str(sopClass, '\0')),
    el(0x0008, 0x0018, 'UI', str(sop, '\0')),
    el(0x0008, 0x0020, 'DA', str('20240101')),
    el(0x0008, 0x0060, 'CS', str('OT')),
    el(0x0010, 0x0010, 'PN', str('Big^Frames')),
    el(0x0010, 0x0020, 'LO', str('BIG-1')),
    el(0x0020, 0x000d, 'UI', str(study, '\0')),
    el(0x0020, 0x000e, 'UI', str(series, '\0')),
    el(0x0020, 0x0013, 'IS', str('1')),
    el(0x0028, 0x0002, 'US', u16(1)),
    el(0x0028, 0x0004, 'CS', str('MONOCHROME2')),
    el(0x0028, 0x0008, 'IS', str(String(frames))),
    el(0x0028, 0x0010, 'US', u16(rows)),
    el(0x0028, 0x0011, 'US', u16(cols)),
    el(0x0028, 0x0100, 'US', u16(8)),
    el(0x0028, 0x0101, 'US', u16(8)),
    el(0x0028, 0x0102, 'US', u16(7)),
    el(0x0028, 0x0103, 'US', u16(0)),
  ]);
  const pixelHeader = Buffer.alloc(12);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.write('OB', 4, 'latin1');
  pixelHeader.writeUInt32LE(frames * frameBytes, 8);
  const header = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), el(0x0002, 0x0000, 'UL', groupLength), meta, dataset, pixelHeader]);
  const size = header.length + frames * frameBytes;
  return {
    study,
    series,
    sop,
    frames,
    frameBytes,
    size,
    header,
    stream() {
      let f = 0;
      const pattern = Buffer.alloc(frameBytes + 256);
      for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 1) & 0xff;
      return new Readable({
        read() {
          if (f === 0) {
            f = 1;
            this.push(header);
            return;
          }
          if (f > frames) {
            this.push(null);
            return;
          }
          // frameByte(f, i) = (31f + i) mod 256: a window into the repeating 0..255 ramp.
          const start = (f * 31) & 0xff;
          this.push(pattern.subarray(start, start + frameBytes));
          f++;
        },
      });
    },
  };
}

/** An endless (or `limit`-byte) stream of zeros, in 1 MiB chunks. */
export function zeros(limit = Number.POSITIVE_INFINITY, prefix?: Buffer): Readable {
  const chunk = Buffer.alloc(1024 * 1024);
  let sent = 0;
  let first = true;
  return new Readable({
    read() {
      if (first && prefix) {
        first = false;
        this.push(prefix);
        return;
      }
      first = false;
      if (sent >= limit) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk.length, limit - sent);
      sent += n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

// Part 10 file helpers (PS3.10 §7): the 128-byte preamble, the "DICM" prefix and
// the File Meta Information group (0002), always explicit VR little endian.

import { invalid } from '../errors.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uids.js';
import { LONG_LENGTH_VRS } from './vr.js';

export const PREAMBLE_LENGTH = 128;
/** Where group 0002 starts: after the preamble and "DICM" (PS3.10 §7.1). */
export const FILE_META_START = PREAMBLE_LENGTH + 4;
/** Largest File Meta Information we read; real ones are a few hundred bytes. */
export const MAX_FILE_META_BYTES = 64 * 1024;

export interface FileMeta {
  /** Offset of the first byte after group 0002: where the data set starts. */
  end: number;
  /** String values of the group (tag "0002eeee" → value without its padding); binary (long-length) values are skipped. */
  values: Record<string, string>;
  /** (0002,0010), when present. */
  transferSyntaxUid?: string;
}

/**
 * Where the data set starts according to the group length (0002,0000), which
 * PS3.10 §7.1 requires as the first element (explicit VR little endian, UL);
 * undefined when `head` (at least FILE_META_START + 12 bytes) does not start so.
 * Ingest refuses objects without it, so every stored object has one.
 */
export function datasetOffsetFromGroupLength(head: Buffer): number | undefined {
  if (head.length < FILE_META_START + 12 || head.toString('latin1', PREAMBLE_LENGTH, FILE_META_START) !== 'DICM') return undefined;
  if (head.readUInt16LE(132) !== 0x0002 || head.readUInt16LE(134) !== 0x0000 || head.toString('latin1', 136, 138) !== 'UL') return undefined;
  return FILE_META_START + 12 + head.readUInt32LE(140);
}

/**
 * THE reader of the File Meta Information (PS3.10 §7.1: group 0002, always explicit
 * VR little endian), for a file on disk, a stored object's first bytes or a stream
 * being read. It walks the group element by element, so files without (0002,0000)
 * work too; with `limit` (the end the group length declares) it stops there and an
 * element running past it is malformed. Returns undefined when `buf` ends before
 * the group does (read more and call again).
 */
export function readFileMeta(buf: Buffer, limit?: number): FileMeta | undefined {
  if (buf.length < FILE_META_START) return undefined;
  if (buf.toString('latin1', PREAMBLE_LENGTH, FILE_META_START) !== 'DICM') throw invalid('not-part10', 'Not a DICOM Part 10 object (no "DICM" prefix).');
  const values: Record<string, string> = {};
  let off = FILE_META_START;
  for (;;) {
    if (limit !== undefined && off + 8 > limit) break;
    if (buf.length < off + 8) return undefined;
    if (buf.readUInt16LE(off) !== 0x0002) {
      if (limit !== undefined) throw invalid('bad-meta', 'The File Meta Information is malformed.');
      break;
    }
    const elem = buf.readUInt16LE(off + 2);
    const vr = buf.toString('latin1', off + 4, off + 6);
    const long = LONG_LENGTH_VRS.has(vr);
    if (long && buf.length < off + 12) return undefined;
    const len = long ? buf.readUInt32LE(off + 8) : buf.readUInt16LE(off + 6);
    const head = long ? 12 : 8;
    if (len === 0xffffffff) throw invalid('bad-meta', 'Undefined length in the File Meta Information.');
    if (off + head + len > (limit ?? MAX_FILE_META_BYTES)) throw invalid('bad-meta', 'The File Meta Information is malformed or too large.');
    if (buf.length < off + head + len) return undefined;
    if (!long) values[`0002${elem.toString(16).toUpperCase().padStart(4, '0')}`] = buf.toString('latin1', off + head, off + head + len).replace(/[\0 ]+$/, '');
    off += head + len;
  }
  const ts = values['00020010']?.trim();
  return { end: off, values, ...(ts ? { transferSyntaxUid: ts } : {}) };
}

function element(group: number, elem: number, vr: string, value: Buffer): Buffer {
  // PS3.5 §7.1.2: long-length VRs have a 4-byte length after two reserved bytes.
  const long = LONG_LENGTH_VRS.has(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** UI values are padded with NUL, other strings with a space, to even length (PS3.5 §6.2). */
function text(s: string, pad: '\0' | ' '): Buffer {
  return Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
}

/**
 * Builds preamble + "DICM" + group 0002 for a dataset received over DIMSE, where
 * the transfer syntax and SOP UIDs come from the association and the C-STORE
 * request rather than from a file (PS3.10 §7.1).
 */
export function buildPart10Header(o: { transferSyntaxUid: string; sopClassUid: string; sopInstanceUid: string; sourceAeTitle?: string }): Buffer {
  const body = Buffer.concat([
    element(0x0002, 0x0001, 'OB', Buffer.from([0x00, 0x01])),
    element(0x0002, 0x0002, 'UI', text(o.sopClassUid, '\0')),
    element(0x0002, 0x0003, 'UI', text(o.sopInstanceUid, '\0')),
    element(0x0002, 0x0010, 'UI', text(o.transferSyntaxUid, '\0')),
    element(0x0002, 0x0012, 'UI', text(IMPLEMENTATION_CLASS_UID, '\0')),
    element(0x0002, 0x0013, 'SH', text(IMPLEMENTATION_VERSION_NAME, ' ')),
    ...(o.sourceAeTitle ? [element(0x0002, 0x0016, 'AE', text(o.sourceAeTitle, ' '))] : []),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length);
  return Buffer.concat([Buffer.alloc(PREAMBLE_LENGTH), Buffer.from('DICM', 'latin1'), element(0x0002, 0x0000, 'UL', groupLength), body]);
}

export type PreambleVerdict = 'ok' | 'executable';

/**
 * The preamble is free for applications (PS3.10 §7.1), which is what makes a
 * file both a valid DICOM object and a Windows executable, an ELF binary, a
 * script or an archive (CVE-2019-11687, "PE-DICOM"). We keep zeros, TIFF headers
 * (dual-personality DICOM/TIFF files, as in pydicom's CT_small.dcm) and any other
 * data, but refuse to store anything a system could execute or a browser render.
 */
export function inspectPreamble(p: Buffer): PreambleVerdict {
  const at = (i: number, ...bytes: number[]) => bytes.every((b, k) => p[i + k] === b);
  if (at(0, 0x4d, 0x5a)) return 'executable'; // "MZ": DOS/PE
  if (at(0, 0x7f, 0x45, 0x4c, 0x46)) return 'executable'; // ELF
  if (at(0, 0xfe, 0xed, 0xfa, 0xce) || at(0, 0xfe, 0xed, 0xfa, 0xcf) || at(0, 0xce, 0xfa, 0xed, 0xfe) || at(0, 0xcf, 0xfa, 0xed, 0xfe) || at(0, 0xca, 0xfe, 0xba, 0xbe)) {
    return 'executable'; // Mach-O (32/64-bit, both byte orders, fat binaries)
  }
  if (at(0, 0x23, 0x21)) return 'executable'; // "#!" script
  if (at(0, 0x50, 0x4b, 0x03, 0x04) || at(0, 0x50, 0x4b, 0x05, 0x06) || at(0, 0x50, 0x4b, 0x07, 0x08)) return 'executable'; // ZIP (JAR, Office, APK)
  // Markup or JSON: first non-blank byte (after an optional UTF-8 BOM) is '<', '{' or '['.
  let i = at(0, 0xef, 0xbb, 0xbf) ? 3 : 0;
  while (i < p.length && (p[i] === 0x20 || p[i] === 0x09 || p[i] === 0x0a || p[i] === 0x0d)) i++;
  if (i < p.length && (p[i] === 0x3c || p[i] === 0x7b || p[i] === 0x5b)) return 'executable';
  return 'ok';
}

// Deflated Explicit VR Little Endian (PS3.5 §A.5): the data set after the File Meta
// Information is a raw deflate stream, and dcmjs inflates it whole, synchronously on
// the event loop, with no limit (pako.inflateRaw in DeflatedReadBufferStream). A 64 MiB
// stream can inflate to tens of gigabytes (issue 14, item 1), and even a legitimate
// 100 MiB one stalls every other request for seconds. So dcmjs never sees a deflated
// object: it is inflated here, on the zlib thread pool, with zlib's maxOutputLength,
// and handed to dcmjs as the Explicit VR Little Endian object it is — once a walk of
// its element headers has shown that dcmjs's parse of it is bounded (parseCostWithin).

import zlib from 'node:zlib';

/** Most bytes a deflated data set may inflate to (it is then held and parsed in memory). */
export const MAX_INFLATED_BYTES = 64 * 1024 * 1024;
/**
 * Most elements (sequence items included) an inflated data set may hold. dcmjs parses
 * on the event loop and its cost grows with the element count, not the byte count: 64 MiB
 * of 8-byte elements took 3.9 s here, 64 MiB of 64 KiB US values 1.5 s (and 800 MiB).
 * 250 000 elements stay under ~150 ms and cover large enhanced multi-frame headers.
 */
export const MAX_INFLATED_ELEMENTS = 250_000;
/** Most bytes of values dcmjs turns into JS numbers and strings (bulk VRs stay ArrayBuffers, cheap). */
export const MAX_INFLATED_VALUE_BYTES = 8 * 1024 * 1024;

const LONG_VRS = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'SQ', 'UN', 'UT', 'UC', 'UR']);
const SHORT_VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US']);
/** Values dcmjs keeps as one ArrayBuffer (a copy, no per-value work). */
const BULK_VRS = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN']);

/**
 * The cost dcmjs will have parsing an Explicit VR Little Endian data set, counted by
 * walking its element headers (PS3.5 §7.1.2, §7.5): items and sequences are entered,
 * values skipped. Stops as soon as a limit is passed, so the walk itself is bounded
 * (at most MAX_INFLATED_ELEMENTS header reads). A header that is not explicit VR little
 * endian (an unknown VR, a length past the end) is damage: dcmjs would guess.
 */
export function parseCostWithin(dataset: Buffer, maxElements = MAX_INFLATED_ELEMENTS, maxValueBytes = MAX_INFLATED_VALUE_BYTES): boolean {
  let p = 0;
  let elements = 0;
  let valueBytes = 0;
  while (p < dataset.length) {
    if (++elements > maxElements) return false;
    if (p + 8 > dataset.length) return false;
    const group = dataset.readUInt16LE(p);
    const element = dataset.readUInt16LE(p + 2);
    if (group === 0xfffe) {
      // Item (E000): entered whatever its length; delimiters (E00D, E0DD) carry none.
      if (element !== 0xe000 && element !== 0xe00d && element !== 0xe0dd) return false;
      p += 8;
      continue;
    }
    const vr = dataset.toString('latin1', p + 4, p + 6);
    if (LONG_VRS.has(vr)) {
      if (p + 12 > dataset.length) return false;
      const length = dataset.readUInt32LE(p + 8);
      p += 12;
      // Sequences (and undefined-length UN, PS3.5 §6.2.2) are entered: their items are counted.
      if (vr === 'SQ' || length === 0xffffffff) continue;
      if (length > dataset.length - p) return false;
      if (!BULK_VRS.has(vr) && (valueBytes += length) > maxValueBytes) return false;
      p += length;
    } else if (SHORT_VRS.has(vr)) {
      const length = dataset.readUInt16LE(p + 6);
      p += 8;
      if (length > dataset.length - p) return false;
      if ((valueBytes += length) > maxValueBytes) return false;
      p += length;
    } else {
      return false;
    }
  }
  return true;
}

/**
 * A deflated Part 10 object as the same object in Explicit VR Little Endian: the data
 * set inflated on the zlib thread pool (at most `max` bytes: beyond, or when the stream
 * is damaged, the check's answer), the File Meta Information rewritten to name Explicit
 * VR Little Endian (PS3.5 §A.5: the inflated data set is exactly that). dcmjs then
 * parses it without inflating anything on the event loop.
 */
export async function inflatePart10(buf: Buffer, datasetOffset: number, max = MAX_INFLATED_BYTES): Promise<{ ok: true; part10: Buffer } | { ok: false; why: 'too-large' | 'too-complex' | 'corrupt' }> {
  let dataset: Buffer;
  try {
    dataset = await new Promise<Buffer>((resolve, reject) => zlib.inflateRaw(buf.subarray(datasetOffset), { maxOutputLength: max }, (e, r) => (e ? reject(e) : resolve(r))));
  } catch (e) {
    return { ok: false, why: (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError ? 'too-large' : 'corrupt' };
  }
  // dcmjs parses what comes back on the event loop: its cost is bounded first (issue 14).
  if (!parseCostWithin(dataset)) return { ok: false, why: 'too-complex' };
  // File Meta Information elements (explicit VR little endian, PS3.10 §7.1), TS replaced, group length recomputed.
  const parts: Buffer[] = [];
  let p = 132;
  while (p + 8 <= datasetOffset) {
    const group = buf.readUInt16LE(p);
    const element = buf.readUInt16LE(p + 2);
    if (group !== 0x0002) break;
    const vr = buf.toString('latin1', p + 4, p + 6);
    const long = LONG_VRS.has(vr);
    const length = long ? buf.readUInt32LE(p + 8) : buf.readUInt16LE(p + 6);
    const headerLength = long ? 12 : 8;
    const end = p + headerLength + length;
    if (end > datasetOffset) return { ok: false, why: 'corrupt' };
    if (element === 0x0010) {
      const uid = Buffer.from('1.2.840.10008.1.2.1\0', 'latin1');
      const h = Buffer.from(buf.subarray(p, p + 8));
      h.writeUInt16LE(uid.length, 6);
      parts.push(h, uid);
    } else if (element !== 0x0000) {
      parts.push(buf.subarray(p, end));
    }
    p = end;
  }
  const body = Buffer.concat(parts);
  const groupLength = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x55, 0x4c, 0x04, 0x00, 0, 0, 0, 0]);
  groupLength.writeUInt32LE(body.length, 8);
  return { ok: true, part10: Buffer.concat([buf.subarray(0, 132), groupLength, body, dataset]) };
}

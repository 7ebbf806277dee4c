// Deflated Explicit VR Little Endian (PS3.5 §A.5): the data set after the File Meta
// Information is a raw deflate stream, and dcmjs inflates it whole, synchronously on
// the event loop, with no limit (pako.inflateRaw in DeflatedReadBufferStream). A 64 MiB
// stream can inflate to tens of gigabytes (issue 14, item 1), and even a legitimate
// 100 MiB one stalls every other request for seconds. So dcmjs never sees a deflated
// object: it is inflated here, on the zlib thread pool, with zlib's maxOutputLength,
// and handed to dcmjs as the Explicit VR Little Endian object it is.

import zlib from 'node:zlib';

/** Most bytes a deflated data set may inflate to (it is then held and parsed in memory). */
export const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

const LONG_VRS = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'SQ', 'UN', 'UT', 'UC', 'UR']);

/**
 * A deflated Part 10 object as the same object in Explicit VR Little Endian: the data
 * set inflated on the zlib thread pool (at most `max` bytes: beyond, or when the stream
 * is damaged, the check's answer), the File Meta Information rewritten to name Explicit
 * VR Little Endian (PS3.5 §A.5: the inflated data set is exactly that). dcmjs then
 * parses it without inflating anything on the event loop.
 */
export async function inflatePart10(buf: Buffer, datasetOffset: number, max = MAX_INFLATED_BYTES): Promise<{ ok: true; part10: Buffer } | { ok: false; why: 'too-large' | 'corrupt' }> {
  let dataset: Buffer;
  try {
    dataset = await new Promise<Buffer>((resolve, reject) => zlib.inflateRaw(buf.subarray(datasetOffset), { maxOutputLength: max }, (e, r) => (e ? reject(e) : resolve(r))));
  } catch (e) {
    return { ok: false, why: (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError ? 'too-large' : 'corrupt' };
  }
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

// Reading a stored Part 10 object for a C-STORE sub-operation: the preamble, "DICM"
// and the File Meta Information (group 0002, explicit VR little endian, PS3.10 §7.1)
// are skipped, and the data set that follows is streamed exactly as stored.
// The group is walked element by element, so files without (0002,0000) work too.

import type { Readable } from 'node:stream';

const MAX_META_BYTES = 64 * 1024;
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

export interface OpenedDataset {
  transferSyntaxUid: string;
  /** The data set bytes: what is left over from the header read, then the rest of the stream. */
  body: AsyncIterable<Buffer>;
}

/** Returns the end offset of group 0002 and its transfer syntax, or undefined when more bytes are needed. */
export function parseMeta(buf: Buffer): { end: number; transferSyntaxUid: string } | undefined {
  if (buf.length < 132) return undefined;
  if (buf.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a Part 10 object');
  let off = 132;
  let ts: string | undefined;
  for (;;) {
    if (buf.length < off + 8) return undefined;
    const group = buf.readUInt16LE(off);
    if (group !== 0x0002) break;
    const elem = buf.readUInt16LE(off + 2);
    const vr = buf.toString('latin1', off + 4, off + 6);
    let len: number;
    let head: number;
    if (LONG_VRS.has(vr)) {
      if (buf.length < off + 12) return undefined;
      len = buf.readUInt32LE(off + 8);
      head = 12;
    } else {
      len = buf.readUInt16LE(off + 6);
      head = 8;
    }
    if (len === 0xffffffff) throw new Error('undefined length in file meta information');
    if (off + head + len > MAX_META_BYTES) throw new Error('file meta information too large');
    if (buf.length < off + head + len) return undefined;
    if (elem === 0x0010) ts = buf.toString('latin1', off + head, off + head + len).replace(/[\0 ]+$/, '');
    off += head + len;
  }
  if (!ts) throw new Error('no transfer syntax in file meta information');
  return { end: off, transferSyntaxUid: ts };
}

export async function openDataset(stream: Readable): Promise<OpenedDataset> {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head: Buffer = Buffer.alloc(0);
  for (;;) {
    const meta = head.length ? parseMeta(head) : undefined;
    if (meta) {
      const rest = head.subarray(meta.end);
      async function* body(): AsyncGenerator<Buffer> {
        if (rest.length) yield rest;
        for (;;) {
          const r = await it.next();
          if (r.done) return;
          yield r.value as Buffer;
        }
      }
      return { transferSyntaxUid: meta.transferSyntaxUid, body: body() };
    }
    if (head.length > MAX_META_BYTES) throw new Error('file meta information too large');
    const r = await it.next();
    if (r.done) throw new Error('object ends inside its file meta information');
    head = head.length ? Buffer.concat([head, r.value as Buffer]) : (r.value as Buffer);
  }
}

// Deflated Explicit VR Little Endian (PS3.5 §A.5): the data set after the File Meta
// Information is a raw deflate stream, and dcmjs inflates it whole, synchronously,
// with no limit (pako.inflateRaw in DeflatedReadBufferStream). A 64 MiB stream can
// inflate to tens of gigabytes (issue 14, item 1). So before dcmjs sees a deflated
// object, the stream is inflated once here — on the zlib thread pool, never the event
// loop — counting bytes and discarding them, and refused beyond MAX_INFLATED_BYTES.

import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';

/** Most bytes a deflated data set may inflate to (it is then held and parsed in memory). */
export const MAX_INFLATED_BYTES = 128 * 1024 * 1024;

export type InflateCheck = { ok: true; size: number } | { ok: false; why: 'too-large' | 'corrupt' };

class TooLarge extends Error {}

/** Inflates `deflated` (a raw deflate stream) without keeping the output; stops past `max` bytes. */
export async function checkInflatedSize(deflated: Uint8Array, max = MAX_INFLATED_BYTES): Promise<InflateCheck> {
  let n = 0;
  const count = new Writable({
    write(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      cb(n > max ? new TooLarge() : null);
    },
  });
  try {
    await pipeline(Readable.from([Buffer.from(deflated.buffer, deflated.byteOffset, deflated.byteLength)]), zlib.createInflateRaw({ chunkSize: 256 * 1024 }), count);
    return { ok: true, size: n };
  } catch (e) {
    return { ok: false, why: e instanceof TooLarge ? 'too-large' : 'corrupt' };
  }
}

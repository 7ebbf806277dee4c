// Reading a stored Part 10 object for a C-STORE sub-operation: the preamble, "DICM"
// and the File Meta Information (group 0002, explicit VR little endian, PS3.10 §7.1)
// are skipped, and the data set that follows is streamed exactly as stored.
// The group is walked element by element, so files without (0002,0000) work too.

import type { Readable } from 'node:stream';
import { MAX_FILE_META_BYTES, readFileMeta } from '../core/dicom/part10.js';

export interface OpenedDataset {
  transferSyntaxUid: string;
  /** The data set bytes: what is left over from the header read, then the rest of the stream. */
  body: AsyncIterable<Buffer>;
}

/**
 * Returns the end offset of group 0002 and its transfer syntax, or undefined when
 * more bytes are needed (the one meta reader, core/dicom/part10.ts).
 */
export function parseMeta(buf: Buffer): { end: number; transferSyntaxUid: string } | undefined {
  const meta = readFileMeta(buf);
  if (!meta) return undefined;
  if (!meta.transferSyntaxUid) throw new Error('no transfer syntax in file meta information');
  return { end: meta.end, transferSyntaxUid: meta.transferSyntaxUid };
}

export async function openDataset(stream: Readable): Promise<OpenedDataset> {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head: Buffer = Buffer.alloc(0);
  for (;;) {
    const meta = head.length ? parseMeta(head) : undefined;
    if (meta) {
      const rest = head.subarray(meta.end);
      async function* body(): AsyncGenerator<Buffer> {
        try {
          if (rest.length) yield rest;
          for (;;) {
            const r = await it.next();
            if (r.done) return;
            yield r.value as Buffer;
          }
        } finally {
          // A consumer that stops early (the association closed mid-send) closes the
          // stream, and with it the file descriptor, now rather than at garbage collection.
          await it.return?.();
        }
      }
      return { transferSyntaxUid: meta.transferSyntaxUid, body: body() };
    }
    if (head.length > MAX_FILE_META_BYTES) throw new Error('file meta information too large');
    const r = await it.next();
    if (r.done) throw new Error('object ends inside its file meta information');
    head = head.length ? Buffer.concat([head, r.value as Buffer]) : (r.value as Buffer);
  }
}

// Reading a stored object forward only. The blob store has no ranged read
// (core/ports/blob-store.ts), so frames, bulk data and the pixel layout are all read
// from a stream: bytes before the current position are dropped, memory stays at
// one window, and a byte range further on is reached by skipping.

import { Readable } from 'node:stream';
import { unavailable } from '../../errors.js';
import type { DicomJson } from '../json.js';

export interface StoredObject {
  /** Cache key: the server-generated object key (immutable content). */
  key: string;
  size: number;
  transferSyntaxUid: string;
  /** DICOM JSON without bulk data (from the database). */
  metadata: DicomJson;
  open(): Promise<Readable>;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * A forward-only stand-in for FileHandle.read over a stream. walk.ts reads at
 * non-decreasing positions (each window reload starts past the previous one), so
 * bytes before the last read position can be dropped; memory stays at one window.
 */
export class ForwardReader {
  private chunks: Buffer[] = [];
  private bufStart = 0; // file offset of chunks[0][0]
  private bufLen = 0;
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(stream: Readable) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.chunks.push(b);
    this.bufLen += b.length;
    return true;
  }

  private drop(upTo: number): void {
    while (this.chunks.length && this.bufStart + this.chunks[0].length <= upTo) {
      this.bufStart += this.chunks[0].length;
      this.bufLen -= this.chunks[0].length;
      this.chunks.shift();
    }
  }

  /** Skips to `pos` and returns up to `n` bytes from there (fewer at the end). */
  async take(pos: number, n: number): Promise<Buffer> {
    if (pos < this.bufStart) throw new Error('ForwardReader: backward read');
    for (;;) {
      this.drop(pos);
      if (this.bufStart + this.bufLen >= pos + n) break;
      if (!(await this.pull())) break;
    }
    this.drop(pos);
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = all.length ? [all] : [];
    const from = pos - this.bufStart;
    return from >= all.length ? Buffer.alloc(0) : all.subarray(from, Math.min(all.length, from + n));
  }

  /** Yields the bytes of `range` (which must not start before earlier ranges). */
  async *range(r: ByteRange): AsyncGenerator<Buffer> {
    let pos = r.offset;
    const end = r.offset + r.length;
    while (pos < end) {
      const b = await this.take(pos, Math.min(1 << 20, end - pos));
      if (b.length === 0) throw unavailable('blob-truncated', 'The stored object is shorter than its index says.');
      pos += b.length;
      yield b;
    }
  }

  /** FileHandle.read, as walk.ts calls it. */
  async read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number; buffer: Buffer }> {
    const b = await this.take(pos, len);
    b.copy(buf, off);
    return { bytesRead: b.length, buffer: buf };
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

/** The first `n` bytes of a stored object (fewer when it is shorter). */
export async function readPrefix(o: StoredObject, n: number): Promise<Buffer> {
  const r = new ForwardReader(await o.open());
  try {
    return Buffer.from(await r.take(0, n));
  } finally {
    await r.close();
  }
}

/**
 * Streams the given ranges of a stored object. Ranges must be in ascending,
 * non-overlapping order; each chunk says which range it belongs to.
 */
export async function* readRanges(o: StoredObject, ranges: ByteRange[]): AsyncGenerator<{ index: number; data: Buffer }> {
  const reader = new ForwardReader(await o.open());
  try {
    for (let i = 0; i < ranges.length; i++) {
      for await (const data of reader.range(ranges[i])) yield { index: i, data };
    }
  } finally {
    await reader.close();
  }
}

export function streamOf(chunks: AsyncIterable<Buffer>): Readable {
  return Readable.from(chunks, { objectMode: false });
}

// The pool of read chunks (src/lib/read-chunks.ts) and the stored-object stream that
// fills them (src/storage/fs-store.ts): a chunk given back is the memory of the next
// read, anything else given back is ignored, and a chunk is never kept twice.

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { giveBackReadChunk, keptReadChunks, READ_CHUNK_BYTES, takeReadChunk } from '../../src/lib/read-chunks.js';
import { createFsBlobStore, READ_CHUNK } from '../../src/storage/fs-store.js';
import { newObjectKey } from '../../src/core/ports/object-keys.js';

function drain(): void {
  while (keptReadChunks() > 0) takeReadChunk();
}

describe('read chunks', () => {
  it('a chunk given back (whole or by a part of it) is the next one taken', () => {
    drain();
    const a = takeReadChunk();
    expect(a.length).toBe(READ_CHUNK_BYTES);
    giveBackReadChunk(a.subarray(100, 200));
    expect(keptReadChunks()).toBe(1);
    const b = takeReadChunk();
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(READ_CHUNK_BYTES);
    expect(keptReadChunks()).toBe(0);
  });

  it('ignores buffers that are not its chunks, and keeps a chunk given back twice once', () => {
    drain();
    giveBackReadChunk(Buffer.allocUnsafeSlow(READ_CHUNK_BYTES));
    giveBackReadChunk(Buffer.from('not a chunk'));
    expect(keptReadChunks()).toBe(0);
    const a = takeReadChunk();
    giveBackReadChunk(a);
    giveBackReadChunk(a.subarray(5));
    expect(keptReadChunks()).toBe(1);
    const b = takeReadChunk();
    const c = takeReadChunk();
    expect(b.buffer).toBe(a.buffer);
    expect(c.buffer).not.toBe(a.buffer);
  });

  it('keeps at most 8 chunks', () => {
    drain();
    const many = Array.from({ length: 12 }, () => takeReadChunk());
    for (const m of many) giveBackReadChunk(m);
    expect(keptReadChunks()).toBe(8);
    drain();
  });
});

const scratch: string[] = [];
/** A filesystem store in a directory of its own, removed after the file's tests. */
async function scratchStore() {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-chunks-'));
  scratch.push(root);
  return createFsBlobStore(root);
}
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

describe('stored object stream', () => {
  it('with reusableChunks, reads into given-back chunks; the bytes are right however the chunks are reused', async () => {
    const store = await scratchStore();
    const objects: { key: string; bytes: Buffer }[] = [];
    for (const size of [1, READ_CHUNK_BYTES - 1, 3 * READ_CHUNK_BYTES + 7]) {
      const key = newObjectKey();
      const bytes = randomBytes(size);
      await store.put(key, Readable.from([bytes]));
      objects.push({ key, bytes });
    }
    drain();
    const seen = new Set<ArrayBuffer>();
    let reads = 0;
    // Read as a sender does: each chunk given back once used (here: once hashed).
    const read = async ({ key, bytes }: { key: string; bytes: Buffer }) => {
      const h = createHash('sha256');
      for await (const c of await store.get(key, { reusableChunks: true })) {
        reads++;
        seen.add((c as Buffer).buffer as ArrayBuffer);
        h.update(c as Buffer);
        giveBackReadChunk(c as Buffer);
      }
      return h.digest('hex') === createHash('sha256').update(bytes).digest('hex');
    };
    // One after another: the same few chunks carry every read.
    for (const o of objects) expect(await read(o)).toBe(true);
    expect(reads).toBe(6);
    expect(seen.size).toBeLessThanOrEqual(3);
    // Three readers at once, sharing the chunks given back: every byte still right.
    const results = await Promise.all([...objects, ...objects, ...objects].map(read));
    expect(results).toEqual(results.map(() => true));
    expect(reads).toBe(24);
    expect(seen.size).toBeLessThan(reads / 2);
  });

  it('without reusableChunks, reads fresh buffers of READ_CHUNK and takes nothing from the pool', async () => {
    const store = await scratchStore();
    const key = newObjectKey();
    await store.put(key, Readable.from([randomBytes(2 * READ_CHUNK + 5)]));
    drain();
    giveBackReadChunk(takeReadChunk());
    const sizes: number[] = [];
    for await (const c of await store.get(key)) sizes.push((c as Buffer).buffer.byteLength);
    expect(sizes).toEqual([READ_CHUNK, READ_CHUNK, 5]);
    expect(keptReadChunks()).toBe(1);
  });

  it('destroyed while a read is on the thread pool: the descriptor is closed after the read, never under it', async () => {
    const store = await scratchStore();
    const key = newObjectKey();
    await store.put(key, Readable.from([randomBytes(5 * READ_CHUNK_BYTES)]));
    const fds = async () => (await fs.readdir('/proc/self/fd')).length;
    const before = await fds();
    for (let i = 0; i < 20; i++) {
      const s = await store.get(key, { reusableChunks: i % 2 === 0 });
      s.resume(); // a read is started
      s.destroy();
      await new Promise((r) => s.once('close', r));
    }
    expect(await fds()).toBe(before);
  });
});

// lib/batched-file.ts: the spool files of both doors, written one writev per MiB
// (issue 13). The bytes must come out exact and in order, a failed open must be a stream
// error (so a STOW-RS part is refused, not hung), and no descriptor may leak.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { BatchedFile, batchedFileStream, FLUSH_BYTES } from '../../src/lib/batched-file.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batched-file-'));
const openFds = () => fs.readdirSync('/proc/self/fd').length;

describe('BatchedFile', () => {
  it('writes every chunk in order through pipeline, holding at most about FLUSH_BYTES between writes', async () => {
    const chunks = [1, 65_536, FLUSH_BYTES - 1, 2, 131_060, 3 * FLUSH_BYTES, 7].map((n) => randomBytes(n));
    const file = path.join(dir, 'a.bin');
    const before = openFds();
    await pipeline(Readable.from(chunks), batchedFileStream(file));
    expect(fs.readFileSync(file).equals(Buffer.concat(chunks))).toBe(true);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(openFds()).toBe(before);
  });

  it('signals a write once FLUSH_BYTES are held, and not before', async () => {
    const f = new BatchedFile(path.join(dir, 'b.bin'));
    expect(f.write(randomBytes(FLUSH_BYTES - 10))).toBeUndefined();
    const w = f.write(randomBytes(10));
    expect(w).toBeInstanceOf(Promise);
    await w;
    expect(fs.statSync(f.path).size).toBe(FLUSH_BYTES);
    await f.close();
  });

  it('a path that exists is a stream error, and the file is left alone', async () => {
    const taken = path.join(dir, 'taken.bin');
    fs.writeFileSync(taken, 'mine');
    await expect(pipeline(Readable.from([randomBytes(10)]), batchedFileStream(taken))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.readFileSync(taken, 'utf8')).toBe('mine');
  });

  it('creates the file off the main thread: a failed open fails the write and the close, and says it created nothing', async () => {
    const taken = path.join(dir, 'taken2.bin');
    fs.writeFileSync(taken, 'mine');
    const f = new BatchedFile(taken);
    f.write(Buffer.from('x'));
    await expect(f.flush()).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(f.close()).rejects.toMatchObject({ code: 'EEXIST' });
    expect(f.created).toBe(false);
    expect(fs.readFileSync(taken, 'utf8')).toBe('mine');

    const before = openFds();
    const fresh = new BatchedFile(path.join(dir, 'fresh.bin'));
    await fresh.abandon(); // at once, the open still on its way: it is waited for, then closed
    expect(fresh.created).toBe(true);
    expect(openFds()).toBe(before);
    const g = new BatchedFile(path.join(dir, 'g.bin'));
    g.write(Buffer.from('abc'));
    await g.close();
    expect(fs.readFileSync(path.join(dir, 'g.bin'), 'utf8')).toBe('abc');
  });

  it('a source that fails mid-way closes the descriptor', async () => {
    const before = openFds();
    const failing = new Readable({
      read() {
        this.push(randomBytes(FLUSH_BYTES + 1));
        this.destroy(new Error('peer went away'));
      },
    });
    await expect(pipeline(failing, batchedFileStream(path.join(dir, 'c.bin')))).rejects.toThrow('peer went away');
    // The stream's destroy finishes after pipeline has rejected (it waits for a write in flight).
    await expect.poll(openFds, { timeout: 2000 }).toBe(before);
  });
});

// The C-STORE spool writer (src/dimse/store-writer.ts): bytes held and written together,
// one writev per FLUSH_BYTES (issue 13), must still give the exact file, its hash and its
// first bytes, and leave nothing behind when the object is too large or discarded.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { Part10TempWriter } from '../../src/dimse/store-writer.js';
import { FLUSH_BYTES } from '../../src/lib/batched-file.js';
import { SPOOL_HEAD_BYTES } from '../../src/lib/head-keeper.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'store-writer-'));

async function feed(w: Part10TempWriter, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) {
    if (!w.write(c)) await new Promise((r) => w.once('drain', r));
  }
  w.end();
  await finished(w);
}

describe('Part10TempWriter', () => {
  it('writes the header and every chunk in order, across several flushes, with the hash and the first 64 KiB', async () => {
    const header = randomBytes(332);
    // Sizes around the flush threshold and PDV sizes real peers send (16 KiB, 128 KiB, odd ones).
    const sizes = [16_372, 131_060, 131_060, FLUSH_BYTES, 1, 998, FLUSH_BYTES - 1, 131_060, 3, 700_001];
    const chunks = sizes.map((n) => randomBytes(n));
    const file = path.join(dir, 'ok.part');
    const w = new Part10TempWriter(file, header, 64 * 1024 * 1024);
    await feed(w, chunks);
    const out = await w.outcome();
    const all = Buffer.concat([header, ...chunks]);
    expect(out).toMatchObject({ ok: true, path: file, size: all.length, bytes: all.length - header.length });
    if (!out.ok) return;
    expect(out.sha256).toBe(createHash('sha256').update(all).digest('hex'));
    expect(out.head.equals(all.subarray(0, SPOOL_HEAD_BYTES))).toBe(true);
    expect(fs.readFileSync(file).equals(all)).toBe(true);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    await w.discard();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('keeps a head shorter than 64 KiB whole for a small object', async () => {
    const header = randomBytes(300);
    const body = randomBytes(5000);
    const w = new Part10TempWriter(path.join(dir, 'small.part'), header, 1 << 20);
    await feed(w, [body]);
    const out = await w.outcome();
    expect(out.ok && out.head.equals(Buffer.concat([header, body]))).toBe(true);
    await w.discard();
  });

  it('hands the first 64 KiB to onHead once, while the rest still arrives; its look-ahead goes with the outcome and is released on discard', async () => {
    const header = randomBytes(332);
    const chunks = [randomBytes(16_372), randomBytes(131_060), randomBytes(131_060)];
    const all = Buffer.concat([header, ...chunks]);
    const heads: Buffer[] = [];
    let released = 0;
    const w = new Part10TempWriter(path.join(dir, 'ahead.part'), header, 1 << 24, undefined, (head) => {
      heads.push(Buffer.from(head));
      return { release: () => void released++ };
    });
    w.write(chunks[0]);
    expect(heads).toHaveLength(0); // 16 KiB in: not yet
    w.write(chunks[1]);
    expect(heads).toHaveLength(1); // past 64 KiB: at once, before the end
    await feed(w, [chunks[2]]);
    expect(heads).toHaveLength(1);
    expect(heads[0].equals(all.subarray(0, SPOOL_HEAD_BYTES))).toBe(true);
    const out = await w.outcome();
    expect(out.ok && out.lookahead).toBeTruthy();
    await w.discard();
    expect(released).toBe(1);
    // A small object never fills the head: no look-ahead (the ingest looks it up itself).
    const small = new Part10TempWriter(path.join(dir, 'ahead-small.part'), header, 1 << 24, undefined, () => {
      throw new Error('must not be called');
    });
    await feed(small, [randomBytes(5000)]);
    expect((await small.outcome()).ok).toBe(true);
    await small.discard();
  });

  it('switches to discarding past the size cap, and the partial file is removed', async () => {
    const file = path.join(dir, 'big.part');
    const w = new Part10TempWriter(file, randomBytes(300), 2 * FLUSH_BYTES);
    await feed(w, [randomBytes(FLUSH_BYTES), randomBytes(FLUSH_BYTES), randomBytes(FLUSH_BYTES)]);
    expect(await w.outcome()).toMatchObject({ ok: false, why: 'too-large' });
    await w.discard();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('never overwrites an existing path, and a refused C-STORE creates no file', async () => {
    const taken = path.join(dir, 'taken.part');
    fs.writeFileSync(taken, 'someone else');
    const w = new Part10TempWriter(taken, randomBytes(300), 1 << 20);
    await feed(w, [randomBytes(10)]);
    expect(await w.outcome()).toMatchObject({ ok: false, why: 'write-failed', detail: 'EEXIST' });
    await w.discard();
    expect(fs.readFileSync(taken, 'utf8')).toBe('someone else');

    const refusedPath = path.join(dir, 'refused.part');
    const r = new Part10TempWriter(refusedPath, undefined, 1 << 20, 'sop-class-mismatch');
    await feed(r, [randomBytes(10)]);
    expect(await r.outcome()).toMatchObject({ ok: false, why: 'refused', detail: 'sop-class-mismatch' });
    expect(fs.existsSync(refusedPath)).toBe(false);
  });

  it('a discard in the middle of a transfer (association aborted) leaves no file', async () => {
    const file = path.join(dir, 'aborted.part');
    const w = new Part10TempWriter(file, randomBytes(300), 64 << 20);
    w.write(randomBytes(FLUSH_BYTES + 10)); // a flush is in flight
    await w.discard();
    expect(fs.existsSync(file)).toBe(false);
  });
});

// The C-STORE data set goes to a temporary Part 10 file, never into memory
// (dcmjs-dimse's default is a MemoryStream: README.md defect 9). This Writable is
// what our Scp returns from createStoreWritableStream: the Part 10 header first
// (PS3.10 §7.1, built from the request and the accepted transfer syntax), then the
// bytes exactly as received. Its write callback only fires once the file has taken
// the chunk, so `write()` returns false while the disk is behind and the PDU loop
// waits for 'drain' (real backpressure, down to TCP).
//
// The SHA-256 of the file is computed in the same pass (header included), so the core
// can move the file into the blob store instead of reading and writing it again.
//
// It never errors towards dcmjs-dimse (an error would leave dcmjs-dimse awaiting a
// 'drain' that never comes): a failure or the size cap switches it to discarding,
// and the outcome is read by the C-STORE handler.

import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';

export type StoreOutcome =
  | { ok: true; path: string; bytes: number; /** of the whole file */ size: number; sha256: string }
  | { ok: false; why: 'too-large' | 'write-failed' | 'refused'; detail?: string };

export class Part10TempWriter extends Writable {
  private file?: WriteStream;
  private received = 0;
  private readonly hash: Hash = createHash('sha256');
  private headerBytes = 0;
  private digest?: string;
  private failure?: { why: 'too-large' | 'write-failed' | 'refused'; detail?: string };
  private readonly fileClosed: Promise<void>;

  constructor(
    readonly path: string,
    header: Buffer | undefined,
    private readonly maxBytes: number,
    refused?: string,
  ) {
    super({ highWaterMark: 256 * 1024 });
    if (refused || !header) {
      this.failure = { why: 'refused', detail: refused };
      this.fileClosed = Promise.resolve();
      return;
    }
    // 'wx': never follow or overwrite an existing path; 0600: only Tresor reads it.
    const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    this.file = file;
    this.fileClosed = new Promise<void>((resolve) => file.once('close', () => resolve()));
    file.on('error', (e: NodeJS.ErrnoException) => this.fail('write-failed', e.code ?? 'error'));
    file.write(header);
    this.hash.update(header);
    this.headerBytes = header.length;
  }

  private fail(why: 'too-large' | 'write-failed', detail?: string): void {
    if (this.failure) return;
    this.failure = { why, detail };
    const f = this.file;
    this.file = undefined;
    if (f && !f.destroyed) f.destroy();
    void this.fileClosed.then(() => rm(this.path, { force: true })).catch(() => undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.received += chunk.length;
    if (!this.failure && this.received > this.maxBytes) this.fail('too-large', `more than ${this.maxBytes} bytes`);
    const f = this.file;
    if (this.failure || !f) return cb();
    let called = false;
    const done = () => {
      if (!called) {
        called = true;
        f.off('error', done);
        cb();
      }
    };
    f.once('error', done);
    this.hash.update(chunk);
    if (f.write(chunk)) done();
    else f.once('drain', done);
  }

  override _final(cb: (e?: Error | null) => void): void {
    const f = this.file;
    if (this.failure || !f) return cb();
    f.end();
    void this.fileClosed.then(() => cb());
  }

  /** After 'finish': where the object is, or why there is none. */
  async outcome(): Promise<StoreOutcome> {
    await this.fileClosed;
    if (this.failure) return { ok: false, ...this.failure };
    return { ok: true, path: this.path, bytes: this.received, size: this.headerBytes + this.received, sha256: (this.digest ??= this.hash.digest('hex')) };
  }

  /** Removes the file (after ingest, or when the association dies mid-transfer). */
  async discard(): Promise<void> {
    const f = this.file;
    this.file = undefined;
    if (f && !f.destroyed) f.destroy();
    await this.fileClosed.catch(() => undefined);
    if (!this.failure || this.failure.why !== 'refused') await rm(this.path, { force: true });
  }
}

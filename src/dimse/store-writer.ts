// The C-STORE data set goes to a temporary Part 10 file, never into memory
// (dcmjs-dimse's default is a MemoryStream: README.md defect 9). This Writable is
// what our Scp returns from createStoreWritableStream: the Part 10 header first
// (PS3.10 §7.1, built from the request and the accepted transfer syntax), then the
// bytes exactly as received. Its write callback only fires once the file has taken
// the chunk (or the chunk is among the at most FLUSH_BYTES held for the next write),
// so `write()` returns false while the disk is behind and the PDU loop waits for
// 'drain' (real backpressure, down to TCP).
//
// The SHA-256 of the file is computed in the same pass (header included), so the core
// can move the file into the blob store instead of reading and writing it again, and
// the file's first bytes are kept (Spooled.head), so the core need not read them back.
//
// Few calls on libuv's thread pool (issue 13: each costs two thread wake-ups, which on
// this machine kind cost more CPU than the syscall): the received PDVs are written
// together, one writev(2) per FLUSH_BYTES, and the file is created and closed directly
// (neither waits for the disk: creating is a directory-entry update, and closing a file
// we only wrote flushes nothing).
//
// It never errors towards dcmjs-dimse (an error would leave dcmjs-dimse awaiting a
// 'drain' that never comes): a failure or the size cap switches it to discarding,
// and the outcome is read by the C-STORE handler.

import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writev } from 'node:fs';
import { Writable } from 'node:stream';
import { removeIfPresent } from '../lib/fs-atomic.js';
import { HeadKeeper } from '../lib/head-keeper.js';

export type StoreOutcome =
  | { ok: true; path: string; bytes: number; /** of the whole file */ size: number; sha256: string; head: Buffer }
  | { ok: false; why: 'too-large' | 'write-failed' | 'refused'; detail?: string };

/** Received bytes held for one write: a typical CT or MR instance is one writev(2). */
export const FLUSH_BYTES = 1024 * 1024;

export class Part10TempWriter extends Writable {
  private fd?: number;
  /** Only a file this writer created is ever removed by it. */
  private created = false;
  private received = 0;
  private readonly hash: Hash = createHash('sha256');
  private readonly head = new HeadKeeper();
  private headerBytes = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** A writev in flight: close and discard wait for it. */
  private inFlight: Promise<void> = Promise.resolve();
  private digest?: string;
  private failure?: { why: 'too-large' | 'write-failed' | 'refused'; detail?: string };

  constructor(
    readonly path: string,
    header: Buffer | undefined,
    private readonly maxBytes: number,
    refused?: string,
  ) {
    super({ highWaterMark: 256 * 1024 });
    if (refused || !header) {
      this.failure = { why: 'refused', detail: refused };
      return;
    }
    try {
      // 'wx': never follow or overwrite an existing path; 0600: only Tresor reads it.
      this.fd = openSync(path, 'wx', 0o600);
      this.created = true;
    } catch (e) {
      this.failure = { why: 'write-failed', detail: (e as NodeJS.ErrnoException).code ?? 'error' };
      return;
    }
    this.take(header);
    this.headerBytes = header.length;
  }

  private take(chunk: Buffer): void {
    this.hash.update(chunk);
    this.head.add(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  private fail(why: 'too-large' | 'write-failed', detail?: string): void {
    if (this.failure) return;
    this.failure = { why, detail };
    this.pending = [];
    this.pendingBytes = 0;
    void this.closeFile().then(() => this.removeFile()).catch(() => undefined);
  }

  /** Writes what is pending; calls back once the file has it (or the writer has failed). */
  private flush(cb: () => void): void {
    const fd = this.fd;
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (fd === undefined || this.failure || bufs.length === 0) return cb();
    this.inFlight = new Promise<void>((resolve) => {
      writeAll(fd, bufs, (err) => {
        if (err) this.fail('write-failed', err.code ?? 'error');
        resolve();
        cb();
      });
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.received += chunk.length;
    if (!this.failure && this.received > this.maxBytes) this.fail('too-large', `more than ${this.maxBytes} bytes`);
    if (this.failure || this.fd === undefined) return cb();
    this.take(chunk);
    if (this.pendingBytes >= FLUSH_BYTES) this.flush(() => cb());
    else cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.flush(() => {
      void this.closeFile().then(() => cb());
    });
  }

  private async closeFile(): Promise<void> {
    await this.inFlight;
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    try {
      closeSync(fd);
    } catch (e) {
      if (!this.failure) this.failure = { why: 'write-failed', detail: (e as NodeJS.ErrnoException).code ?? 'error' };
    }
  }

  /** After 'finish': where the object is, or why there is none. */
  async outcome(): Promise<StoreOutcome> {
    await this.closeFile();
    if (this.failure) return { ok: false, ...this.failure };
    return {
      ok: true,
      path: this.path,
      bytes: this.received,
      size: this.headerBytes + this.received,
      sha256: (this.digest ??= this.hash.digest('hex')),
      head: this.head.bytes(),
    };
  }

  /** Removes the file (after ingest, or when the association dies mid-transfer). */
  async discard(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    await this.closeFile();
    await this.removeFile();
  }

  private async removeFile(): Promise<void> {
    if (this.created) await removeIfPresent(this.path);
  }
}

/** writev(2) until every byte is written (a regular file may take fewer bytes than asked). */
function writeAll(fd: number, bufs: Buffer[], cb: (err: NodeJS.ErrnoException | null) => void): void {
  writev(fd, bufs, (err, written) => {
    if (err) return cb(err);
    let left = written;
    let i = 0;
    while (i < bufs.length && left >= bufs[i].length) left -= bufs[i++].length;
    if (i === bufs.length) return cb(null);
    const rest = [bufs[i].subarray(left), ...bufs.slice(i + 1)];
    writeAll(fd, rest, cb);
  });
}

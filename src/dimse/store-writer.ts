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
// Once those first bytes are in (SPOOL_HEAD_BYTES), `onHead` hands them to the core,
// which looks the object up while the rest arrives (IngestTransfer.lookAhead).
//
// Few calls on libuv's thread pool (issue 13): the received PDVs are written together,
// one writev(2) per FLUSH_BYTES (lib/batched-file.ts).
//
// It never errors towards dcmjs-dimse (an error would leave dcmjs-dimse awaiting a
// 'drain' that never comes): a failure or the size cap switches it to discarding,
// and the outcome is read by the C-STORE handler.

import { createHash, type Hash } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Lookahead } from '../core/ingest.js';
import { BatchedFile } from '../lib/batched-file.js';
import { removeIfPresent } from '../lib/fs-atomic.js';
import { HeadKeeper } from '../lib/head-keeper.js';

export type StoreOutcome =
  | { ok: true; path: string; bytes: number; /** of the whole file */ size: number; sha256: string; head: Buffer; lookahead?: Lookahead }
  | { ok: false; why: 'too-large' | 'write-failed' | 'refused'; detail?: string };

export class Part10TempWriter extends Writable {
  private file?: BatchedFile;
  /** Only a file this writer created is ever removed by it (BatchedFile.created). */
  private spool?: BatchedFile;
  private received = 0;
  private readonly hash: Hash = createHash('sha256');
  private readonly head = new HeadKeeper();
  private headerBytes = 0;
  private closing?: Promise<void>;
  private digest?: string;
  private failure?: { why: 'too-large' | 'write-failed' | 'refused'; detail?: string };
  private lookahead?: Lookahead;

  constructor(
    readonly path: string,
    header: Buffer | undefined,
    private readonly maxBytes: number,
    refused?: string,
    /** Called once, when the first SPOOL_HEAD_BYTES are in; what it returns is released on discard. */
    private onHead?: (head: Buffer) => Lookahead,
  ) {
    super({ highWaterMark: 256 * 1024 });
    if (refused || !header) {
      this.failure = { why: 'refused', detail: refused };
      return;
    }
    // A failed open fails the first write or the close: 'write-failed' with its code.
    this.file = this.spool = new BatchedFile(path);
    this.take(header);
    this.headerBytes = header.length;
  }

  /** Hashes, keeps the head, queues; a promise when a write went out. */
  private take(chunk: Buffer): Promise<void> | undefined {
    this.hash.update(chunk);
    this.head.add(chunk);
    if (this.onHead && this.head.full()) {
      const onHead = this.onHead;
      this.onHead = undefined;
      this.lookahead = onHead(this.head.bytes());
    }
    return this.file!.write(chunk);
  }

  private fail(why: 'too-large' | 'write-failed', detail?: string): void {
    if (this.failure) return;
    this.failure = { why, detail };
    const f = this.file;
    this.file = undefined;
    void f?.abandon().then(() => this.removeFile()).catch(() => undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.received += chunk.length;
    if (!this.failure && this.received > this.maxBytes) this.fail('too-large', `more than ${this.maxBytes} bytes`);
    if (this.failure || !this.file) return cb();
    const wrote = this.take(chunk);
    if (!wrote) return cb();
    wrote.then(
      () => cb(),
      (e: NodeJS.ErrnoException) => {
        this.fail('write-failed', e.code ?? 'error');
        cb();
      },
    );
  }

  override _final(cb: (e?: Error | null) => void): void {
    void this.closeFile().then(() => cb());
  }

  /** Writes what is held and closes; a write error becomes the outcome. */
  private closeFile(): Promise<void> {
    return (this.closing ??= (async () => {
      const f = this.file;
      if (!f || this.failure) return;
      try {
        await f.close();
      } catch (e) {
        this.fail('write-failed', (e as NodeJS.ErrnoException).code ?? 'error');
      }
    })());
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
      ...(this.lookahead ? { lookahead: this.lookahead } : {}),
    };
  }

  /** Removes the file (after ingest, or when the association dies mid-transfer). */
  async discard(): Promise<void> {
    // A look-ahead the ingest did not use (refused, failed, aborted) drops its journal entry.
    this.lookahead?.release();
    const f = this.file;
    this.file = undefined;
    if (!this.closing) await f?.abandon().catch(() => undefined);
    else await this.closing;
    await this.removeFile();
  }

  private async removeFile(): Promise<void> {
    // Settled by now: abandon() and close() wait for the open.
    if (this.spool?.created) await removeIfPresent(this.path);
  }
}

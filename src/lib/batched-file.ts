// A new file written in few system calls: the chunks a door receives are held and
// written together, one writev(2) per FLUSH_BYTES, and the file is closed directly
// (closing a file we only wrote flushes nothing, while each call on libuv's thread pool
// costs two thread wake-ups, which on this machine kind cost more CPU than the call
// itself: issue 13, perf put a fifth of an ingest's CPU in them). The file is created
// on the thread pool, though: creating is a directory-entry update in the file system's
// journal, and while other files are being fsynced (every ingest fsyncs its object and
// the database its log) open(2) with O_CREAT waits for the journal's commit — up to a
// millisecond per object on the main thread, in a profile of one C-STORE association
// (issue 13). Used for the spool files of C-STORE (dimse/store-writer.ts) and STOW-RS
// (core/ingest.ts).

import { closeSync, open, writev } from 'node:fs';
import { Writable } from 'node:stream';

/** Bytes held for one write: a typical CT or MR instance is one writev(2). */
export const FLUSH_BYTES = 1024 * 1024;

export class BatchedFile {
  private fd?: number;
  private closed = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The open and the writes so far, in order; rejects with the first error (a failed open included). */
  private written: Promise<void>;
  /** True once this object created the file: only then may its owner remove the path. */
  created = false;

  /** Creates `path` ('wx': never an existing path; 0600: only Tresor reads it). A failed open(2) fails the first write, flush or close. */
  constructor(readonly path: string) {
    this.written = new Promise<void>((resolve, reject) =>
      open(path, 'wx', 0o600, (err, fd) => {
        if (err) return reject(err);
        this.created = true;
        this.fd = fd;
        resolve();
      }),
    );
    this.written.catch(() => undefined); // read by write/flush/close/abandon
  }

  /** Queues `chunk`; a promise when the held bytes reached FLUSH_BYTES and a write went out (wait for it: backpressure). */
  write(chunk: Buffer): Promise<void> | undefined {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    return this.pendingBytes >= FLUSH_BYTES ? this.flush() : undefined;
  }

  /** Writes what is held; resolves when every write so far is done. */
  flush(): Promise<void> {
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.closed && bufs.length > 0) {
      // After the open (chained): the descriptor is there when this runs.
      this.written = this.written.then(() => new Promise<void>((resolve, reject) => writeAll(this.fd!, bufs, (e) => (e ? reject(e) : resolve()))));
    }
    return this.written;
  }

  /** Writes the rest and closes the descriptor; the file stays. */
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      this.closeNow();
    }
  }

  /** Drops what is held, waits for a write in flight, and closes (the caller removes the file). */
  async abandon(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    await this.written.catch(() => undefined);
    this.closeNow();
  }

  private closeNow(): void {
    this.closed = true;
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) closeSync(fd);
  }
}

/** A Writable onto a new BatchedFile, for pipeline(): a failed open is a stream error; destroyed, it closes the descriptor (the caller removes the file). */
export function batchedFileStream(path: string): Writable {
  let file: BatchedFile | undefined;
  return new Writable({
    highWaterMark: 256 * 1024,
    construct(cb) {
      try {
        file = new BatchedFile(path);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    write(chunk: Buffer, _enc, cb) {
      const p = file!.write(chunk);
      if (p) p.then(() => cb(), cb);
      else cb();
    },
    final(cb) {
      file!.close().then(() => cb(), cb);
    },
    destroy(err, cb) {
      if (!file) return cb(err);
      file.abandon().then(
        () => cb(err),
        () => cb(err),
      );
    },
  });
}

/** writev(2) until every byte is written (a regular file may take fewer bytes than asked). */
function writeAll(fd: number, bufs: Buffer[], cb: (err: NodeJS.ErrnoException | null) => void): void {
  writev(fd, bufs, (err, written) => {
    if (err) return cb(err);
    let left = written;
    let i = 0;
    while (i < bufs.length && left >= bufs[i].length) left -= bufs[i++].length;
    if (i === bufs.length) return cb(null);
    writeAll(fd, [bufs[i].subarray(left), ...bufs.slice(i + 1)], cb);
  });
}

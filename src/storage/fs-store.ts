// Filesystem blob store. Layout under the root (all 0700 dirs, 0600 files):
//   objects/ab/cd/<hex>   the objects, at their key (keys.ts)
//   tmp/<uuid>.part       writes in progress
// A put streams to tmp/ (same filesystem, so rename is atomic), fsyncs the file,
// renames it into place and fsyncs the directory: after a crash an object is
// either complete under its key or absent, never partial. adopt() takes a spool file
// that is already complete (C-STORE, STOW-RS) instead: renamed under its key, then the
// file and the directory flushed together, so every received byte is written once
// instead of twice (issue 13). Until those flushes end a crash may leave it partial
// under its key, but only ever journaled and unreferenced (see BlobStore.adopt).

import { randomUUID } from 'node:crypto';
import { chmodSync, closeSync, fstatSync, open as openFd, read as readFd, statSync } from 'node:fs';
import { access, constants, copyFile, mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { isTresorError, notFound, unavailable } from '../core/errors.js';
import type { AdoptOptions, BlobInfo, BlobStore, GetOptions, PutResult } from '../core/ports/blob-store.js';
import { assertValidKeyPrefix, assertValidObjectKey, isValidObjectKey } from '../core/ports/object-keys.js';
import { fsyncDir, fsyncFile } from '../lib/fs-atomic.js';
import { giveBackReadChunk, takeReadChunk } from '../lib/read-chunks.js';
import { ensurePrivateDir, removeStaleFiles, writeNewFile } from './temp-files.js';

/**
 * Bytes per read of a stored object for a reader that does not give its chunks back
 * (BlobStore.get without `reusableChunks`): the stream holds at most about this much ahead
 * of its reader, so memory stays bounded for an object of any size. Just under glibc
 * malloc's default mmap threshold (128 KiB): each such chunk is a fresh Buffer, and a
 * larger one is mmapped and handed back to the kernel when it is freed, so every read
 * faulted in new zeroed pages (measured with 1 MiB reads: ~40 page faults per MB sent).
 * A reader that gives its chunks back gets READ_CHUNK_BYTES ones from lib/read-chunks.ts.
 */
export const READ_CHUNK = 120 * 1024;

/**
 * A stored object as a stream, from a descriptor just opened. A WADO-RS study retrieve's
 * CPU profile showed the file-system calls, not the bytes, as a third of the server's time
 * (issue 13): each call on libuv's thread pool costs a wake-up of a worker and of the
 * event loop. So:
 *  - reads go through fs.read's callbacks, not a FileHandle (whose read costs a promise
 *    and a request object per chunk), a chunk at a time, up to the size known at open:
 *    no read that only finds the end of the file (an object is never rewritten under its
 *    key); a short read is passed on as the part of the chunk it filled, not copied;
 *  - the size comes from fstat(2) and the descriptor is closed with close(2), both called
 *    directly: on a descriptor already open for reading neither waits for the disk (the
 *    inode is in memory; nothing is written back on close), so they cost microseconds
 *    where a thread-pool round trip costs a hundred.
 * With `reusable`, chunks come from lib/read-chunks.ts and are read on demand only (no
 * read-ahead: they are large, and the sender's socket buffer keeps the pipe full).
 * Not fs.createReadStream: it allocates a new Buffer for every read.
 */
class StoredObjectStream extends Readable {
  private pos = 0;
  private reading = false;
  private closeWhenRead?: () => void;

  constructor(
    private readonly fd: number,
    private readonly size: number,
    private readonly reusable: boolean,
  ) {
    super({ highWaterMark: reusable ? 0 : READ_CHUNK });
  }

  override _read(): void {
    const left = this.size - this.pos;
    if (left <= 0) {
      this.push(null);
      return;
    }
    const chunk = this.reusable ? takeReadChunk() : Buffer.allocUnsafeSlow(Math.min(READ_CHUNK, left));
    this.reading = true;
    readFd(this.fd, chunk, 0, Math.min(chunk.length, left), this.pos, (e, bytesRead) => {
      this.reading = false;
      if (this.destroyed || e || bytesRead === 0) {
        giveBackReadChunk(chunk);
        // Destroyed during the read: the close it deferred runs now. A read that found the
        // end early means the object is shorter than at open: never, as an object is not
        // rewritten under its key.
        if (this.destroyed) this.closeWhenRead?.();
        else this.destroy(e ?? new Error('stored object ended before its size'));
        return;
      }
      this.pos += bytesRead;
      this.push(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
    });
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    // Never close the descriptor under a read on the thread pool: the number could be
    // reused by another open before the read runs.
    const close = () => closeNow(this.fd, (e) => cb(err ?? e));
    if (this.reading) this.closeWhenRead = close;
    else close();
  }
}

function closeNow(fd: number, cb: (e: NodeJS.ErrnoException | null) => void): void {
  let err: NodeJS.ErrnoException | null = null;
  try {
    closeSync(fd);
  } catch (e) {
    err = e as NodeJS.ErrnoException;
  }
  cb(err);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

/** `tempMaxAgeMs`: temp files older than this are removed at start (0: all, when the root is ours alone). */
export async function createFsBlobStore(rootDir: string, opts: { tempMaxAgeMs?: number } = {}): Promise<BlobStore> {
  const root = path.resolve(rootDir);
  const tmpDir = path.join(root, 'tmp');
  await ensurePrivateDir(root);
  await ensurePrivateDir(tmpDir);
  await ensurePrivateDir(path.join(root, 'objects'));
  await removeStaleFiles(tmpDir, opts.tempMaxAgeMs);

  // Keys are validated before they touch the filesystem; every valid key starts
  // with `objects/`, so the result is always inside root/objects.
  const pathOf = (key: string): string => {
    assertValidObjectKey(key);
    return path.join(root, key);
  };

  /** Renames a durable temp file to `dest` and makes the rename durable; on failure nothing is under dest. */
  async function moveIntoPlace(tmp: string, dest: string): Promise<void> {
    try {
      const created = await renameInto(tmp, dest);
      await syncDirectories(path.dirname(dest), created);
    } catch (e) {
      // Rejecting must mean "nothing under key": the caller will not record it.
      await rm(tmp, { force: true });
      await rm(dest, { force: true });
      throw mapFsError(e);
    }
  }

  /**
   * rename(2) of `from` to `to`, creating the fan-out directories only when the rename says
   * they are missing (most objects go into existing ones). Returns, for syncDirectories,
   * the topmost fan-out directory whose entry must be flushed: none when they all existed.
   */
  async function renameInto(from: string, to: string): Promise<string | undefined> {
    try {
      await rename(from, to);
      return undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      const created = await mkdir(path.dirname(to), { recursive: true, mode: 0o700 });
      await rename(from, to);
      // undefined: a concurrent adopt or put created the directories first, and may not
      // have flushed their entries yet; flush the fan-out levels here too rather than
      // answer before they are durable.
      return created ?? path.dirname(path.dirname(to));
    }
  }

  /** fsync `dir`, and, when fan-out directories were created, each parent up to the topmost new one's (they are entries in their parents). */
  async function syncDirectories(dir: string, created: string | undefined): Promise<void> {
    await fsyncDir(dir);
    if (!created) return;
    const top = path.dirname(created);
    for (let d = path.dirname(dir); ; d = path.dirname(d)) {
      await fsyncDir(d);
      if (d === top || d === path.dirname(d)) break;
    }
  }

  async function* walk(rel: string, depth: number, prefix: string): AsyncGenerator<string> {
    let entries;
    try {
      entries = await readdir(path.join(root, rel), { withFileTypes: true });
    } catch (e) {
      if (isMissing(e)) return; // removed while walking
      throw mapFsError(e);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const child = `${rel}/${entry.name}`;
      if (depth > 0) {
        if (entry.isDirectory() && overlaps(`${child}/`, prefix)) yield* walk(child, depth - 1, prefix);
      } else if (entry.isFile() && child.startsWith(prefix) && isValidObjectKey(child)) {
        yield child;
      }
    }
  }

  return {
    async put(key: string, body: Readable): Promise<PutResult> {
      let dest: string;
      try {
        dest = pathOf(key);
      } catch (e) {
        body.destroy(); // we own the stream once put() is called
        throw e;
      }
      const tmp = path.join(tmpDir, `${randomUUID()}.part`);
      let written: PutResult;
      try {
        written = await writeNewFile(tmp, body, true);
      } catch (e) {
        throw mapFsError(e); // writeNewFile already removed the temp file
      }
      await moveIntoPlace(tmp, dest);
      return written;
    },

    async adopt(key: string, file: string, info: PutResult, opts: AdoptOptions = {}): Promise<PutResult> {
      const dest = pathOf(key);
      // Metadata calls that never wait for the disk are made directly; each thread-pool
      // call costs two thread wake-ups (issue 13: 14 such calls per instance before, 2 now).
      try {
        const st = statSync(file);
        if (st.size !== info.size) throw new Error('spool file changed size');
        if (st.mode & 0o077) chmodSync(file, 0o600);
      } catch (e) {
        throw mapFsError(e);
      }
      // Straight under its key: the journal entry the caller committed first covers an
      // object whose bytes are not yet durable (a crash before the row commits leaves it
      // to the sweeper), so the rename need not wait for the file's fsync, and the two
      // flushes (the file's, the directory's) run at the same time.
      let created: string | undefined;
      try {
        created = await renameInto(file, dest);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw mapFsError(e);
        // The spool is on another filesystem: one copy, flushed before it takes the key.
        const tmp = path.join(tmpDir, `${randomUUID()}.part`);
        try {
          await copyFile(file, tmp);
          await fsyncFile(tmp);
        } catch (e2) {
          await rm(tmp, { force: true });
          throw mapFsError(e2);
        }
        await moveIntoPlace(tmp, dest);
        return { size: info.size, sha256: info.sha256 };
      }
      try {
        const ownFlush = async () => {
          if (!(opts.durable && (await opts.durable))) await fsyncFile(dest);
        };
        await Promise.all([ownFlush(), syncDirectories(path.dirname(dest), created)]);
      } catch (e) {
        await rm(dest, { force: true });
        throw mapFsError(e);
      }
      return { size: info.size, sha256: info.sha256 };
    },

    async get(key: string, opts?: GetOptions): Promise<Readable> {
      const p = pathOf(key);
      let fd: number | undefined;
      try {
        fd = await new Promise<number>((resolve, reject) => openFd(p, 'r', (e, fd) => (e ? reject(e) : resolve(fd))));
        return new StoredObjectStream(fd, fstatSync(fd).size, opts?.reusableChunks ?? false);
      } catch (e) {
        if (fd !== undefined) closeQuietly(fd);
        if (isMissing(e)) throw notFound('object-not-found');
        throw mapFsError(e);
      }
    },

    async stat(key: string): Promise<BlobInfo | null> {
      const p = pathOf(key);
      try {
        const st = await stat(p);
        return st.isFile() ? { size: st.size } : null;
      } catch (e) {
        if (isMissing(e)) return null;
        throw mapFsError(e);
      }
    },

    async delete(key: string): Promise<void> {
      const p = pathOf(key);
      try {
        await unlink(p);
      } catch (e) {
        if (!isMissing(e)) throw mapFsError(e);
      }
    },

    list(prefix: string): AsyncIterable<string> {
      return (async function* () {
        assertValidKeyPrefix(prefix); // lazily, like every other failure of list()
        if (overlaps('objects/', prefix)) yield* walk('objects', 2, prefix);
      })();
    },

    async ping(): Promise<void> {
      try {
        await access(path.join(root, 'objects'), constants.W_OK | constants.X_OK);
      } catch (e) {
        const mapped = mapFsError(e);
        throw isTresorError(mapped) ? mapped : unavailable('storage-unavailable', 'object storage is unavailable', e);
      }
    },

    async close(): Promise<void> {},
  };
}

/** True when a directory key (ending in `/`) can contain keys starting with prefix. */
const overlaps = (dirKey: string, prefix: string) => dirKey.startsWith(prefix) || prefix.startsWith(dirKey);

const isMissing = (e: unknown) => {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/** Disk trouble becomes `unavailable` (HTTP 503 / DIMSE 0xA700); source-stream errors pass through. */
function mapFsError(e: unknown): unknown {
  switch ((e as NodeJS.ErrnoException | null)?.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return unavailable('storage-full', 'object storage is full', e);
    case 'EIO':
    case 'EROFS':
    case 'EACCES':
    case 'EPERM':
    case 'EMFILE':
    case 'ENFILE':
      return unavailable('storage-unavailable', 'object storage is unavailable', e);
    default:
      return e;
  }
}

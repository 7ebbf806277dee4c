// Writing a small secret or certificate file so that a crash leaves either the old
// file or the complete new one, never half a key, and never briefly readable by
// others: created with its final mode (re-applied because open's mode is filtered
// by the umask), fsynced, then renamed into place.

import { randomBytes } from 'node:crypto';
import { closeSync, fdatasync, fsync, lstatSync, openSync } from 'node:fs';
import { open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode);
      await fh.writeFile(data, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * fsync a directory, so that a rename or a new entry in it survives a crash (the
 * file's own fsync does not make its directory entry durable).
 */
export function fsyncDir(dir: string): Promise<void> {
  return flushPath(dir, fsync);
}

/** fdatasync a file's bytes (not its directory entry: see fsyncDir). */
export function fsyncFile(file: string): Promise<void> {
  return flushPath(file, fdatasync);
}

/**
 * One call on libuv's thread pool, not three: only the flush waits for the disk. open(2)
 * of a path read-only and close(2) of a descriptor that wrote nothing never do (the
 * inode is in memory; close writes nothing back), so they are called directly. Each
 * thread-pool call costs two thread wake-ups, which on this machine kind cost more CPU
 * than the syscall itself (issue 13: perf showed a fifth of an ingest's CPU in wake-ups).
 */
function flushPath(p: string, flush: (fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => void): Promise<void> {
  let fd: number;
  try {
    fd = openSync(p, 'r');
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise<void>((resolve, reject) => {
    flush(fd, (err) => {
      try {
        closeSync(fd);
      } catch {
        // The flush's outcome is what counts; a descriptor is closed even when close reports an error.
      }
      if (err) reject(err);
      else resolve();
    });
  });
}

/** Removes a file if it is there. Absent (already moved or removed) is the common case and costs one lstat(2), called directly. */
export async function removeIfPresent(file: string): Promise<void> {
  try {
    lstatSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  await rm(file, { force: true });
}

/** fsync every file and directory under `dir`, children before their directory (a tree written without flushes). */
export async function fsyncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await fsyncTree(p);
    else if (entry.isFile()) await fsyncFile(p);
  }
  await fsyncDir(dir);
}

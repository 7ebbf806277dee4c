// Private temp files shared by both stores: the fs store writes each object to a
// temp file before renaming it into place; the S3 store spools streams of unknown
// length to one so it can send a single PUT with a known Content-Length.

import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const STALE_TEMP_MS = 60 * 60 * 1000;

/** Creates `dir` (and parents) as 0700 when absent. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * Streams `body` into a new file (O_EXCL, mode 0600), honouring backpressure, and
 * returns its size. With `fsync` the data is flushed to disk before the file is
 * closed. On any error (source or disk) the file is removed and the error rethrown.
 */
export async function writeNewFile(filePath: string, body: Readable, fsync: boolean): Promise<{ size: number; sha256: string }> {
  // Open before streaming: the file then exists before any error can happen, so
  // the cleanup below cannot race with a still-pending open.
  const fh = await open(filePath, 'wx', 0o600);
  try {
    // The content hash in the same pass as the write (ingest needs it; reading the
    // object again for it would double the I/O on the hot path).
    const hash = createHash('sha256');
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    await pipeline(body, tap, fh.createWriteStream({ flush: fsync }));
    return { size: (await stat(filePath)).size, sha256: hash.digest('hex') };
  } catch (e) {
    body.destroy();
    await fh.close().catch(() => undefined); // usually already closed by the stream
    await rm(filePath, { force: true });
    throw e;
  }
}

/** Removes regular files in `dir` older than `maxAgeMs` (left by a crash mid-write). */
export async function removeStaleFiles(dir: string, maxAgeMs = STALE_TEMP_MS): Promise<void> {
  const cutoff = Date.now() - maxAgeMs;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const p = path.join(dir, entry.name);
    const st = await stat(p).catch(() => null);
    if (st && st.mtimeMs < cutoff) await rm(p, { force: true });
  }
}

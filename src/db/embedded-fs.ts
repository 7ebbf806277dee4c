// The embedded database's data directory, with commits that reach the disk.
//
// Read in @electric-sql/pglite 0.5.17 (issue 13, "durability unchanged"): PGlite mounts
// the data directory through Emscripten's NODEFS, so PostgreSQL's writes are node fs
// writes on real descriptors. Two things stopped them ever being flushed:
//   - PGlite starts PostgreSQL with `-F` (fsync = off), so no commit or checkpoint asks;
//   - asked, nothing would happen: musl's fsync() ends in WASI fd_sync, which calls the
//     stream's `fsync` operation, and NODEFS has none; fdatasync() is a syscall stub
//     that returns 0.
// So a power cut could lose the last ~30 s of acknowledged commits (the kernel's dirty
// page expiry), and a checkpoint could even recycle WAL whose data pages were not yet
// on disk. Here NODEFS gets an fsync that calls fsync(2) on the real descriptor, and
// PostgreSQL runs with fsync on and wal_sync_method = fsync (fdatasync stays a stub): a
// commit returns after its WAL is on disk, and a checkpoint flushes every data file it
// wrote before WAL is removed — PostgreSQL's own rules, now with a disk underneath.

import fs from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';

/** What the embedded engine has flushed in this process (tests and the start-up log). */
export const embeddedFsyncStats = { calls: 0, failures: 0 };

/** A stream of Emscripten's NODEFS: `nfd` is the real descriptor node opened. */
interface NodeFsStream {
  nfd?: number;
}

interface NodeFsType {
  stream_ops: { fsync?: (stream: NodeFsStream) => number };
  tryFSOperation<T>(op: () => T): T;
}

/** NODEFS with a stream `fsync` that reaches the disk. */
export class DurableNodeFS extends NodeFS {
  override async init(...args: Parameters<NodeFS['init']>): ReturnType<NodeFS['init']> {
    const result = await super.init(...args);
    const preRun = result.emscriptenOpts.preRun ?? [];
    preRun.push((mod) => {
      const nodefs = mod.NODEFS as unknown as NodeFsType;
      // tryFSOperation turns a failed fsync (EIO, ENOSPC) into the errno PostgreSQL sees;
      // it then PANICs, as it does on any server (data_sync_retry = off): a failed flush
      // must never be taken for a durable commit.
      nodefs.stream_ops.fsync = (stream) =>
        nodefs.tryFSOperation(() => {
          if (stream.nfd === undefined) return 0;
          try {
            fs.fsyncSync(stream.nfd);
            embeddedFsyncStats.calls++;
            return 0;
          } catch (e) {
            embeddedFsyncStats.failures++;
            throw e;
          }
        });
    });
    result.emscriptenOpts.preRun = preRun;
    return result;
  }
}

/**
 * PGlite's start parameters without `-F`: fsync on. (Its other defaults stay: one
 * backend, no parallel workers, synchronous I/O.)
 */
export const DURABLE_START_PARAMS: string[] = PGlite.defaultStartParams.filter((p) => p !== '-F');

/** Settings that go with it: fdatasync() is a stub in Emscripten, fsync() is not (above). */
export const DURABLE_CONF: string[] = ['fsync=on', 'wal_sync_method=fsync'];

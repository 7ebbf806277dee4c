// One process per data directory (issue 11 item 1): `tresor serve` and every offline
// command take <dataDir>/tresor.lock before they write anything; a second process is
// refused with the holder's pid. Two processes on one embedded database (PGlite) each
// keep their own copy in memory and the last to write wins — silent data loss.
//
// Mechanism, and why: the lock file is created with O_CREAT|O_EXCL (atomic on local
// filesystems) and holds {pid, host, started, command, token}. It is removed on exit. A
// lock left by a crash is stale when its host is this host and its pid is gone
// (`process.kill(pid, 0)` → ESRCH) or is now another process (the pid's start time in
// /proc differs — pids are reused, in containers the new process is often pid 1 again).
// A stale lock is removed only under a second O_EXCL file (tresor.lock.recover), after
// re-reading that it is still the same stale content, so two processes recovering at
// once cannot both win. A lock from another host (a data directory on a network share)
// is never taken over: we cannot see that process. proper-lockfile was considered: it
// uses mkdir plus an mtime refreshed by a timer and declares a lock stale when the mtime
// is older than a threshold, so a process paused longer than that (SIGSTOP, a VM freeze,
// a blocked event loop) loses its lock to a second one; it also stores no pid to name.

import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, unlinkSync, writeSync, mkdirSync, fsyncSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'tresor.lock';
const RECOVER_FILE = 'tresor.lock.recover';
/** A recovery guard older than this was left by a crash in the middle of a recovery. */
const RECOVER_GUARD_STALE_MS = 30_000;

interface LockContent {
  pid: number;
  host: string;
  /** The holder's start time as the kernel counts it (Linux /proc/<pid>/stat field 22), or null. */
  procStart: string | null;
  started: string;
  command: string;
  token: string;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: Partial<LockContent>,
  ) {
    const who = holder.pid !== undefined ? `process ${holder.pid}` : 'another process';
    const what = holder.command ? ` (tresor ${holder.command}, started ${holder.started ?? '?'}` + (holder.host && holder.host !== os.hostname() ? ` on host ${holder.host})` : ')') : '';
    super(`data directory ${dataDir} is in use by ${who}${what}: stop that process first, or use another --data-dir` +
      (holder.host && holder.host !== os.hostname() ? `; if that host is gone, remove ${path.join(dataDir, LOCK_FILE)}` : ''));
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  readonly file: string;
  /** Removes the lock file if it is still ours; safe to call twice. */
  release(): void;
}

/** The start time of `pid` (Linux), to tell a live holder from a reused pid; null elsewhere. */
function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(file: string): { raw: string; content: Partial<LockContent> } | null {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    return { raw, content: JSON.parse(raw) as Partial<LockContent> };
  } catch {
    // Empty or torn: a crash between create and write. Treated as stale below.
    return { raw, content: {} };
  }
}

/** Tokens of the locks this process holds: its own pid in a lock file is stale only if not one of these. */
const heldTokens = new Set<string>();

function isStale(c: Partial<LockContent>, file: string): boolean {
  if (c.host !== undefined && c.host !== os.hostname()) return false;
  if (typeof c.pid !== 'number') {
    // A crash between O_EXCL and the write leaves an empty file; give a live writer a moment.
    try {
      return Date.now() - statSync(file).mtimeMs > 5_000;
    } catch {
      return true;
    }
  }
  // Our own pid: held by us (a second lock in the same process is refused too), or left by
  // a previous life with the same pid (containers start as pid 1 every time).
  if (c.pid === process.pid) return !(typeof c.token === 'string' && heldTokens.has(c.token));
  if (!alive(c.pid)) return true;
  const now = procStart(c.pid);
  return c.procStart != null && now !== null && now !== c.procStart;
}

function tryCreate(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Removes a stale lock under the recovery guard; true when it was removed (or already gone). */
function removeStale(dir: string, file: string, staleRaw: string): boolean {
  const guard = path.join(dir, RECOVER_FILE);
  if (!tryCreate(guard, String(process.pid))) {
    try {
      if (Date.now() - statSync(guard).mtimeMs > RECOVER_GUARD_STALE_MS) unlinkSync(guard);
    } catch {
      /* gone meanwhile */
    }
    return false;
  }
  try {
    const again = readLock(file);
    if (again === null) return true;
    if (again.raw !== staleRaw) return false; // someone else recovered and now holds it
    unlinkSync(file);
    return true;
  } finally {
    try {
      unlinkSync(guard);
    } catch {
      /* ignore */
    }
  }
}

/** Takes the data directory's lock or throws DataDirLockedError naming the holder. */
export function acquireDataDirLock(dataDir: string, command: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, LOCK_FILE);
  const mine: LockContent = {
    pid: process.pid,
    host: os.hostname(),
    procStart: procStart(process.pid),
    started: new Date().toISOString(),
    command,
    token: randomBytes(8).toString('hex'),
  };
  const text = `${JSON.stringify(mine)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (tryCreate(file, text)) return held(file, text, mine.token);
    const current = readLock(file);
    if (current === null) continue; // released meanwhile
    if (!isStale(current.content, file)) throw new DataDirLockedError(dataDir, current.content);
    removeStale(dataDir, file, current.raw);
  }
  const last = readLock(file);
  throw new DataDirLockedError(dataDir, last?.content ?? {});
}

function held(file: string, text: string, token: string): DataDirLock {
  heldTokens.add(token);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    heldTokens.delete(token);
    process.off('exit', release);
    try {
      if (readFileSync(file, 'utf8') === text) unlinkSync(file);
    } catch {
      /* already gone */
    }
  };
  // Also on a plain process.exit(); a SIGKILL or a crash leaves the file, recovered above.
  process.on('exit', release);
  return { file, release };
}

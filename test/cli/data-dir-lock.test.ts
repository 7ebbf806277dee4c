// Issue 11 item 1: lib/data-dir-lock.ts against real processes — a live holder is refused
// by pid, a dead one (crash) or a reused pid is taken over, a foreign host never is.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireDataDirLock, DataDirLockedError, LOCK_FILE } from '../../src/lib/data-dir-lock.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-lock-'));
  dirs.push(d);
  return d;
};
const procStart = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};
const writeLock = (dir: string, content: Record<string, unknown>) => fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(content), { mode: 0o600 });

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('data directory lock', () => {
  it('is exclusive within a process too, and release removes only its own file', () => {
    const dir = tmp();
    const lock = acquireDataDirLock(dir, 'serve');
    expect(fs.statSync(lock.file).mode & 0o777).toBe(0o600);
    expect(() => acquireDataDirLock(dir, 'migrate')).toThrow(`in use by process ${process.pid} (tresor serve`);
    lock.release();
    expect(fs.existsSync(lock.file)).toBe(false);
    const again = acquireDataDirLock(dir, 'migrate');
    // A release after someone else took the file over leaves theirs alone.
    lock.release();
    expect(fs.existsSync(again.file)).toBe(true);
    again.release();
  });

  it('refuses while another live process holds it, naming its pid', async () => {
    const dir = tmp();
    const holder = spawn('sleep', ['60']);
    children.push(holder);
    await new Promise((r) => holder.once('spawn', r));
    writeLock(dir, { pid: holder.pid, host: os.hostname(), procStart: procStart(holder.pid!), started: 'x', command: 'serve', token: 't' });
    let err: unknown;
    try {
      acquireDataDirLock(dir, 'admin recover');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect(String((err as Error).message)).toContain(`in use by process ${holder.pid} (tresor serve`);
  });

  it('takes over after a crash (pid gone) and after pid reuse (start time differs)', async () => {
    const dir = tmp();
    const dead = spawn('true');
    await new Promise((r) => dead.once('exit', r));
    writeLock(dir, { pid: dead.pid, host: os.hostname(), procStart: '1', started: 'x', command: 'serve', token: 't' });
    acquireDataDirLock(dir, 'serve').release();

    const live = spawn('sleep', ['60']);
    children.push(live);
    await new Promise((r) => live.once('spawn', r));
    writeLock(dir, { pid: live.pid, host: os.hostname(), procStart: '12345', started: 'x', command: 'serve', token: 't' });
    const lock = acquireDataDirLock(dir, 'serve');
    expect(JSON.parse(fs.readFileSync(lock.file, 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('never takes over a lock from another host', () => {
    const dir = tmp();
    writeLock(dir, { pid: 999999, host: 'other-node', procStart: '1', started: 'x', command: 'serve', token: 't' });
    expect(() => acquireDataDirLock(dir, 'serve')).toThrow(/in use by process 999999 \(tresor serve, started x on host other-node\).*remove .*tresor\.lock/);
  });
});

// Issue 14, item 1: decoder children never outlive the server. A process owning a codec
// pool is killed with SIGKILL (no handler runs); its children notice the closed IPC
// channel (or, if stuck in a decoder, their watchdog thread notices the new parent pid)
// and exit.

import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

it('the decoder children exit when the server is killed with SIGKILL', async () => {
  const parent = fork(path.join(here, 'fixtures/codec-parent.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { pids } = await new Promise<{ pids: number[] }>((resolve, reject) => {
    parent.once('message', (m) => resolve(m as { pids: number[] }));
    parent.once('exit', (code) => reject(new Error(`codec parent exited with ${code}`)));
  });
  expect(pids).toHaveLength(2);
  expect(pids.every(alive)).toBe(true);
  const exited = new Promise((r) => parent.once('exit', r));
  parent.kill('SIGKILL');
  await exited;
  const deadline = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(pids.filter(alive)).toEqual([]);
}, 120_000);

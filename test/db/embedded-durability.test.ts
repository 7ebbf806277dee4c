// The embedded database's commits reach the disk (issue 13: "a success status goes out
// only after the object's bytes are on disk (fsync) and its rows are committed").
// PGlite alone runs with fsync off and Emscripten's NODEFS cannot flush (see
// src/db/embedded-fs.ts). A power cut cannot be staged here; what can be watched is the
// kernel: strace shows the fsync(2) calls a real process makes, with the file behind each
// descriptor (-y). The commit must not return before its WAL segment was flushed, and a
// checkpoint must flush the data files it wrote.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openDb } from '../../src/db/knex.js';
import { embeddedFsyncStats } from '../../src/db/embedded-fs.js';

const repo = path.resolve(import.meta.dirname, '../..');

describe('embedded database durability (fsync reaches the disk)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-durable-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('runs PostgreSQL with fsync on and wal_sync_method fsync, and each commit flushes', async () => {
    const db = await openDb({ embeddedDir: path.join(dir, 'a') });
    try {
      await migrate(db);
      expect((await db.raw('SHOW fsync')).rows[0].fsync).toBe('on');
      expect((await db.raw('SHOW wal_sync_method')).rows[0].wal_sync_method).toBe('fsync');
      const before = embeddedFsyncStats.calls;
      for (let i = 0; i < 5; i++) await db('departments').insert({ name: `D${i}` });
      // One flush per commit at least (PostgreSQL may also flush a new segment's directory).
      expect(embeddedFsyncStats.calls - before).toBeGreaterThanOrEqual(5);
      const beforeCheckpoint = embeddedFsyncStats.calls;
      await db.raw('CHECKPOINT');
      expect(embeddedFsyncStats.calls - beforeCheckpoint).toBeGreaterThan(0);
      expect(embeddedFsyncStats.failures).toBe(0);
    } finally {
      await db.destroy();
    }
  }, 120_000);

  it('strace: the commit returns only after fsync(2) on its WAL segment; CHECKPOINT fsyncs the table files', async () => {
    const data = path.join(dir, 'b');
    // Created (and migrated) first, so the traced run below is only the commits.
    const db = await openDb({ embeddedDir: data });
    await migrate(db);
    await db.destroy();
    // Markers: an unlink of a file that does not exist is a syscall strace shows in order.
    const script = `
      const fs = require('node:fs');
      const mark = (name) => { try { fs.unlinkSync('/tmp/tresor-marker-' + name); } catch {} };
      (async () => {
        const { openDb } = await import(${JSON.stringify(path.join(repo, 'dist/src/db/knex.js'))});
        const db = await openDb({ embeddedDir: ${JSON.stringify(data)} });
        mark('before-commit');
        await db('departments').insert({ name: 'Traced' });
        mark('after-commit');
        await db.raw('CHECKPOINT');
        mark('after-checkpoint');
        await db.destroy();
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const trace = path.join(dir, 'strace.txt');
    const r = spawnSync('strace', ['-f', '-y', '-qq', '-e', 'trace=fsync,fdatasync,unlink,unlinkat', '-o', trace, process.execPath, '-e', script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const lines = (await fs.readFile(trace, 'utf8')).split('\n');
    const at = (marker: string): number => lines.findIndex((l) => l.includes(marker));
    const before = at('tresor-marker-before-commit');
    const afterCommit = at('tresor-marker-after-commit');
    const afterCheckpoint = at('tresor-marker-after-checkpoint');
    expect(before).toBeGreaterThanOrEqual(0);
    expect(afterCommit).toBeGreaterThan(before);
    expect(afterCheckpoint).toBeGreaterThan(afterCommit);
    const flushed = (from: number, to: number, re: RegExp) => lines.slice(from, to).filter((l) => /fsync\(/.test(l) && re.test(l) && / = 0$/.test(l));
    // The insert's commit: fsync on a WAL segment, between the markers.
    expect(flushed(before, afterCommit, /\/pg_wal\/[0-9A-F]{24}>/)).not.toHaveLength(0);
    // The checkpoint: the departments table's file (base/<db>/<relfilenode>) and pg_control.
    expect(flushed(afterCommit, afterCheckpoint, /\/base\/\d+\/\d+>/)).not.toHaveLength(0);
    expect(flushed(afterCommit, afterCheckpoint, /\/global\/pg_control>/)).not.toHaveLength(0);
  }, 180_000);
});

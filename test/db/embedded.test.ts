// The embedded database (src/db/knex.ts, issue 13 item 4): a new data directory is
// created by a short-lived child process (initdb's memory leaves with it), the engine
// runs with the small-footprint settings, and the directory opens again with its data.
// The resident-memory figures themselves live in `npm run bench:footprint`, not here.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openDb } from '../../src/db/knex.js';

describe('embedded database (PGlite in a data directory)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-embedded-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('creates a new directory, runs with 16 MB of shared buffers, and keeps its rows across a reopen', async () => {
    const pgdata = path.join(dir, 'pgdata');
    const db = await openDb({ embeddedDir: pgdata });
    try {
      // Created before this process's engine started (by the child), so PG_VERSION is there.
      expect((await fs.readFile(path.join(pgdata, 'PG_VERSION'), 'utf8')).trim()).toMatch(/^\d+$/);
      await migrate(db);
      const sb = await db.raw('SHOW shared_buffers');
      expect(sb.rows[0].shared_buffers).toBe('16MB');
      await db('departments').insert({ name: 'Embedded' });
    } finally {
      await db.destroy();
    }
    const again = await openDb({ embeddedDir: pgdata });
    try {
      expect(await migrate(again)).toEqual([]);
      expect((await again('departments').where({ name: 'Embedded' })).length).toBe(1);
      const wm = await again.raw('SHOW work_mem');
      expect(wm.rows[0].work_mem).toBe('4MB');
    } finally {
      await again.destroy();
    }
  }, 120_000);

  it('a data directory that cannot be created is a clear error naming it', async () => {
    // A file where the directory should be: mkdir fails before any engine starts.
    const file = path.join(dir, 'not-a-dir');
    await fs.writeFile(file, 'x');
    await expect(openDb({ embeddedDir: path.join(file, 'pgdata') })).rejects.toThrow(/not-a-dir/);
  });
});

// Where an ingest's milliseconds go: the real core ingest (createDeps) on PGlite or
// PostgreSQL (PROFILE_DATABASE_URL) and filesystem blobs, fed the Part 10 files of a
// data set the way C-STORE feeds it (spool to a temporary file, then ingestFile),
// with timing spans around spool, parse+checks, journal, blob put, row transaction
// and the transfer's audit row. Not a benchmark (that is `npm run bench`).
//   usage: npx tsx scripts/profile-ingest.ts DATASET_DIR [CONCURRENCY=1] [LIMIT=200]
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config.js';
import { createDeps } from '../src/deps.js';
import { createIngestRepo } from '../src/db/ingest.repo.js';
import { openDb, migrate } from '../src/db/knex.js';
import { createLogger } from '../src/log.js';
import { createFsBlobStore } from '../src/storage/fs-store.js';
import type { Principal } from '../src/core/principal.js';

const [dataset, conc = '1', lim = '200'] = process.argv.slice(2);
const spans: Record<string, number[]> = {};
const add = (k: string, ms: number) => (spans[k] ??= []).push(ms);
async function timed<T>(k: string, f: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await f();
  } finally {
    add(k, performance.now() - t);
  }
}

const files: string[] = [];
async function walk(d: string) {
  for (const e of await fs.readdir(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) await walk(p);
    else if (e.name.endsWith('.dcm')) files.push(p);
  }
}
await walk(dataset);
files.sort();
files.splice(Number(lim));

const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-profile-'));
const config = { ...loadConfig({ dataDir, databaseUrl: process.env.PROFILE_DATABASE_URL }, {}) };
const db = await openDb({ url: config.databaseUrl, embeddedDir: config.databaseUrl ? undefined : path.join(dataDir, "db") });
await migrate(db);
const [dept] = await db('departments').insert({ name: 'profile' }).returning('id');
const blobs = await createFsBlobStore(path.join(dataDir, 'blobs'));
const realRepo = createIngestRepo(db);
const repo = {
  ...realRepo,
  lookup: (q: any) => timed('db: lookup + journal insert', () => realRepo.lookup(q)),
  insert: (n: any) => timed('db: rows (one statement, or transaction)', () => realRepo.insert(n)),
};
const wrappedBlobs: any = { ...blobs, put: (k: string, b: any) => timed('blob put (copy+fsync+rename)', () => blobs.put(k, b)) };
if (blobs.adopt) wrappedBlobs.adopt = (k: string, f: string, i: any, o: any) => timed('blob adopt (rename; fsync unless done)', () => blobs.adopt!(k, f, i, o));
const spooledInfo = !process.env.PROFILE_NO_ADOPT;
const { pki } = await import('../test/helpers/pki.js').then((m) => m.sharedTestPki());
const deps = await createDeps(config, createLogger('silent'), { db, blobs: wrappedBlobs as any, ingestRepo: repo as any, pki });
const realAppend = (deps.audit as any).record;
const p: Principal = { kind: 'device', id: 1, name: 'PROFILE', globalAdmin: false, roles: [{ departmentId: Number(dept.id ?? dept), role: 'writer' }] };
const tmp = path.join(dataDir, 'tmp');

const t0 = performance.now();
let next = 0;
async function worker() {
  const t = deps.ingest.openTransfer(p, { via: 'dimse', source: 'PROFILE' });
  for (;;) {
    const i = next++;
    if (i >= files.length) break;
    const ti = performance.now();
    const spool = path.join(tmp, `dimse-${randomUUID()}.part`);
    const info = await timed('spool (write temp file + sha256)', async () => {
      const buf = await fs.readFile(files[i]);
      await fs.writeFile(spool, buf);
      return { size: buf.length, sha256: createHash('sha256').update(buf).digest('hex') };
    });
    await timed('ingestFile total', () => t.ingestFile(spool, spooledInfo ? { spooled: info } as any : {}));
    await fs.rm(spool, { force: true });
    add('per instance total', performance.now() - ti);
  }
  await timed('transfer audit row (per association)', () => t.end());
}
await Promise.all(Array.from({ length: Number(conc) }, worker));
const wall = performance.now() - t0;
void realAppend;
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`| span (${process.env.PROFILE_DATABASE_URL ? 'PostgreSQL' : 'PGlite'}, ${conc} concurrent, ${files.length} instances) | n | median ms | mean ms | total s |`);
console.log('|---|---:|---:|---:|---:|');
for (const [k, v] of Object.entries(spans)) console.log(`| ${k} | ${v.length} | ${med(v).toFixed(2)} | ${(v.reduce((a, b) => a + b, 0) / v.length).toFixed(2)} | ${(v.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} |`);
console.log(`| wall | | | | ${(wall / 1000).toFixed(2)} (${(files.length / (wall / 1000)).toFixed(1)} inst/s) |`);
await deps.close();
await db.destroy();
await fs.rm(dataDir, { recursive: true, force: true });

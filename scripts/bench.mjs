#!/usr/bin/env node
// `npm run bench`: Tresor and Orthanc (both DICOM over mutual TLS) side by side with
// the shared harness (../shared/bench/compare.sh): same machine, data set and dcmtk
// clients. Speed and memory targets live here, never in timed tests.
//   env: BENCH_DATASET (default /tmp/pacs-bench/ds, generated if missing),
//        BENCH_TARGETS (default "orthanc-tls tresor tresor-pg tresor-edge"), REPEAT (default 1), plus run.sh knobs.
//   tresor: the embedded database; tresor-pg: the same build on PostgreSQL (BENCH_PG_URL), so both
//   databases are columns of one table next to Orthanc.
//   tresor-edge: the same Tresor behind `tresor edge` (plain DICOM to the edge, mutual TLS
//   from the edge): C-STORE through the edge next to direct TLS (issue 12: within 15%).
// Needs (Debian): orthanc orthanc-dicomweb orthanc-postgresql dcmtk python3-pydicom
// python3-numpy socat; PostgreSQL on 127.0.0.1:5432 for Orthanc's index.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bench = path.resolve(process.env.BENCH_HARNESS ?? path.join(repo, '..', 'shared', 'bench'));
const dataset = process.env.BENCH_DATASET ?? '/tmp/pacs-bench/ds';
const work = '/tmp/pacs-bench/tresor';
if (!fs.existsSync(path.join(bench, 'compare.sh'))) throw new Error(`benchmark harness not found at ${bench} (set BENCH_HARNESS)`);
if (!fs.existsSync(path.join(dataset, 'manifest.json'))) {
  execFileSync('/usr/bin/python3', [path.join(bench, 'gen-dataset.py'), dataset, '--studies', '20', '--series', '2', '--instances', '50', '--seed', '7'], { stdio: 'inherit' });
}
const workEdge = '/tmp/pacs-bench/tresor-edge';
const workPg = '/tmp/pacs-bench/tresor-pg';
const names = (process.env.BENCH_TARGETS ?? 'orthanc-tls tresor tresor-pg tresor-edge').split(/\s+/).filter(Boolean);
// Which commit is measured (and whether the tree had changes), on top of the table.
const git = (...a) => spawnSync('git', a, { cwd: repo, encoding: 'utf8' }).stdout.trim();
console.log(`# Tresor commit ${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' (with uncommitted changes)' : ''}; load: ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
if (names.includes('tresor')) execFileSync(process.execPath, [path.join(repo, 'scripts/bench-provision.mjs'), work], { stdio: 'inherit' });
if (names.includes('tresor-pg')) execFileSync(process.execPath, [path.join(repo, 'scripts/bench-provision.mjs'), workPg, '--pg'], { stdio: 'inherit' });
if (names.includes('tresor-edge')) execFileSync(process.execPath, [path.join(repo, 'scripts/bench-provision.mjs'), workEdge, '--edge'], { stdio: 'inherit' });
const targets = names.map((t) => (t === 'tresor' ? path.join(work, 'target.env') : t === 'tresor-pg' ? path.join(workPg, 'target.env') : t === 'tresor-edge' ? path.join(workEdge, 'target.env') : t));
const r = spawnSync(path.join(bench, 'compare.sh'), [dataset, ...targets], { stdio: 'inherit', env: { ...process.env, REPEAT: process.env.REPEAT ?? '1' } });
// Stop the Tresors (and the edge) we started.
for (const pidFile of [path.join(work, 'tresor.pid'), path.join(workPg, 'tresor.pid'), path.join(workEdge, 'edge.pid'), path.join(workEdge, 'tresor.pid')]) {
  try {
    process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM');
  } catch {
    /* already gone */
  }
}
process.exit(r.status ?? 1);

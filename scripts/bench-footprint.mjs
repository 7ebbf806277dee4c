#!/usr/bin/env node
// `npm run bench:footprint`: Tresor's resident memory (issue 13 item 4), on embedded
// defaults and on PostgreSQL, from the process's own /proc/PID/status:
//   idle, first start — right after a fresh data directory was created and provisioned;
//   idle, restart     — the same data directory started again (the steady state);
//   ingest peak       — VmHWM during 4 parallel storescu associations over TLS, and
//                       its rise above the restart's idle figure.
// Goals: idle ≤ 250 MB embedded, ≤ 100 MB on PostgreSQL; ≤ +200 MB while ingesting.
// Memory is not a timing: these figures do not depend on the machine's load.
// Idle is measured IDLE_S after start: V8 keeps the young generation it grew while starting
// (semi-spaces of up to 16 MB each) until its memory reducer runs, ~18 s into idleness; at
// 15 s the same server read 87-94 MB in one run and 124-135 MB in the next (issue 13).
//   env: BENCH_DATASET (default /tmp/pacs-bench/ds), BENCH_PG_URL, FOOTPRINT_FILES (default 400), IDLE_S (default 30)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// BENCH_TRESOR_REPO measures another build (its dist/): before/after figures of two commits.
const tresorRepo = path.resolve(process.env.BENCH_TRESOR_REPO ?? repo);
const dataset = process.env.BENCH_DATASET ?? '/tmp/pacs-bench/ds';
const idleMs = Number(process.env.IDLE_S ?? 30) * 1000;
const nFiles = Number(process.env.FOOTPRINT_FILES ?? 400);
const bench = path.resolve(process.env.BENCH_HARNESS ?? path.join(repo, '..', 'shared', 'bench'));
if (!fs.existsSync(path.join(dataset, 'manifest.json'))) {
  execFileSync('/usr/bin/python3', [path.join(bench, 'gen-dataset.py'), dataset, '--studies', '20', '--series', '2', '--instances', '50', '--seed', '7'], { stdio: 'inherit' });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const status = (pid, key) => Number(/(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${key}:`)))[1]) / 1024;

function healthy(port) {
  return new Promise((resolve) => {
    // Loopback only, a status code only: the certificate is not what is measured here.
    const req = https.get({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

async function measure(kind) {
  const onPg = kind === 'postgresql';
  const work = `/tmp/pacs-bench/footprint-${onPg ? 'pg' : 'embedded'}`;
  const httpPort = onPg ? 8473 : 8483;
  const dimsePort = onPg ? 2792 : 2802;
  const env = { ...process.env, TRESOR_BENCH_HTTP_PORT: String(httpPort), TRESOR_BENCH_DIMSE_PORT: String(dimsePort) };
  execFileSync(process.execPath, [path.join(repo, 'scripts/bench-provision.mjs'), work, ...(onPg ? ['--pg'] : [])], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const pid1 = Number(fs.readFileSync(path.join(work, 'tresor.pid'), 'utf8'));
  await sleep(idleMs);
  const firstStart = status(pid1, 'VmRSS');
  process.kill(pid1, 'SIGTERM');
  for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid1}`); i++) await sleep(100);

  // The same data directory (and database), started again: what a clinic's server holds day to day.
  const dbUrl = new URL(process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  dbUrl.pathname = `/tresor_bench_${dimsePort}`;
  const child = spawn(process.execPath, [path.join(tresorRepo, 'dist/src/cli.js'), 'serve'], {
    env: {
      ...process.env,
      TRESOR_DATA_DIR: path.join(work, 'data'),
      TRESOR_HTTP_PORT: String(httpPort),
      TRESOR_DIMSE_PORT: String(dimsePort),
      TRESOR_LOG_LEVEL: 'warn',
      ...(onPg ? { DATABASE_URL: dbUrl.href } : {}),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; !(await healthy(httpPort)); i++) {
    if (i > 300) throw new Error(`Tresor (${kind}) did not restart`);
    await sleep(100);
  }
  await sleep(idleMs);
  const restart = status(child.pid, 'VmRSS');

  const files = spawnSync('find', [dataset, '-name', '*.dcm'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).sort().slice(0, nFiles);
  const tls = ['+tls', path.join(work, 'device.key'), path.join(work, 'device.crt'), '+cf', path.join(work, 'ca.crt')];
  const parts = [0, 1, 2, 3].map((k) => files.filter((_, i) => i % 4 === k));
  const runs = parts.map(
    (part) =>
      new Promise((resolve) => {
        const p = spawn('storescu', ['-R', '-aet', 'BENCHSCU', '-aec', 'TRESOR', ...tls, '127.0.0.1', String(dimsePort), ...part], { stdio: 'ignore', env: { ...process.env, TCP_NODELAY: '1' } });
        p.on('exit', (code) => resolve(code));
      }),
  );
  const codes = await Promise.all(runs);
  const peak = status(child.pid, 'VmHWM');
  child.kill('SIGTERM');
  return { kind, firstStart, restart, peak, rise: peak - restart, ok: codes.every((c) => c === 0) };
}

const git = (...a) => spawnSync('git', a, { cwd: repo, encoding: 'utf8' }).stdout.trim();
console.log(`# Tresor commit ${git('-C', tresorRepo, 'rev-parse', '--short', 'HEAD')}${git('-C', tresorRepo, 'status', '--porcelain', '--untracked-files=no') ? ' (with uncommitted changes)' : ''}; ${nFiles} files in 4 associations`);
const rows = [];
for (const kind of (process.env.FOOTPRINT_TARGETS ?? 'embedded postgresql').split(/\s+/).filter(Boolean)) rows.push(await measure(kind));
const mb = (v) => v.toFixed(0);
console.log('\n| database | idle, first start (MB) | idle, restart (MB) | goal | peak during ingest (MB) | rise (MB) | goal | storescu |');
console.log('|---|---:|---:|---:|---:|---:|---:|---|');
for (const r of rows) {
  console.log(`| ${r.kind} | ${mb(r.firstStart)} | ${mb(r.restart)} | ≤ ${r.kind === 'embedded' ? 250 : 100} | ${mb(r.peak)} | +${mb(r.rise)} | ≤ +200 | ${r.ok ? 'ok' : 'FAILED'} |`);
}

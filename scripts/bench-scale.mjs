#!/usr/bin/env node
// `npm run bench:scale` (issue 13 item 3): builds a 100,000-instance archive through the
// real ingest path — STOW-RS over HTTPS into `tresor serve` on PostgreSQL — and then
// measures the QIDO-RS and WADO-RS reads that must stay flat with archive size, as a
// reader of one department and as the global admin.
//   Archive: 1,000 studies in 10 departments; one study with a single 1,000-instance
//   series and 999 studies of 2 series × 50 instances (100,900 instances); both studies
//   read below are in the reader's department. The instances are
//   small synthetic CT images made here (8×8 pixels, Explicit VR Little Endian), with
//   patient names, IDs, accession numbers, dates and modalities (CT, one study in five
//   with an MR series) that the queries select on.
//   Ingest rate: the first and the last SCALE_WINDOW instances (empty vs full archive).
//   Reads: p50 of QUERY_RUNS requests each, over one keep-alive HTTPS connection.
//   env: SCALE_STUDIES (default 1000), BENCH_PG_URL, QUERY_RUNS (default 30),
//        STOW_PARALLEL (default 4), STOW_BATCH (default 50), SCALE_WINDOW (default 5000),
//        SCALE_REUSE=1 (measure the reads again on the last run's archive: no ingest; for
//        iterating on a query), SCALE_KEEP=1 (leave the server running afterwards, for
//        profiling; its tokens are in the work directory's state.json, mode 0600)
// Must finish within 30 minutes on the 2-core machine kind (prints its own duration).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const t0 = Date.now();
const repo = path.resolve(process.env.BENCH_TRESOR_REPO ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const STUDIES = Number(process.env.SCALE_STUDIES ?? 1000);
const DEPARTMENTS = 10;
const RUNS = Number(process.env.QUERY_RUNS ?? 30);
const PARALLEL = Number(process.env.STOW_PARALLEL ?? 4);
const BATCH = Number(process.env.STOW_BATCH ?? 50);
const WINDOW = Number(process.env.SCALE_WINDOW ?? 5000);
const HTTP_PORT = 8513;
const DIMSE_PORT = 2832;

// ---- synthetic instances (PS3.10 Part 10, Explicit VR Little Endian, PS3.5 §7.1.2)
const LONG_VRS = new Set(['OB', 'OW', 'SQ', 'UN', 'UT']);
function el(tag, vr, value) {
  const group = tag >>> 16;
  const element = tag & 0xffff;
  const long = LONG_VRS.has(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const str = (s, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const uid = (s) => str(s, '\0');
const us = (n) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const ul = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const PIXELS = Buffer.alloc(8 * 8 * 2, 7);
const work = '/tmp/pacs-bench/scale';
const stateFile = path.join(work, 'state.json');
// SCALE_REUSE: the archive, the passwords and the UID root of the last run (state.json).
const reuse = process.env.SCALE_REUSE === '1' ? JSON.parse(fs.readFileSync(stateFile, 'utf8')) : undefined;
if (reuse && reuse.studies !== STUDIES) throw new Error(`the archive in ${work} has ${reuse.studies} studies, not ${STUDIES}`);
const ROOT = reuse?.root ?? `2.25.${BigInt(`0x${randomBytes(8).toString('hex')}`)}`;
const SURNAMES = ['MILLER', 'JOHNSON', 'GARCIA', 'NGUYEN', 'ERIKSSON', 'SMITH', 'MARTIN', 'ANDERSON', 'ROSSI', 'MEYER'];

function study(i) {
  const big = i === 0;
  return {
    i,
    department: `Scale D${String((i % DEPARTMENTS) + 1).padStart(2, '0')}`,
    uid: `${ROOT}.${i + 1}`,
    patientName: SURNAMES[i % SURNAMES.length],
    patientId: `PID${String(i).padStart(6, '0')}`,
    accession: `ACC${String(i).padStart(7, '0')}`,
    date: `20${20 + (i % 6)}${String((i % 12) + 1).padStart(2, '0')}${String((i % 28) + 1).padStart(2, '0')}`,
    series: big ? [{ modality: 'CT', n: 1000 }] : [{ modality: 'CT', n: 50 }, { modality: i % 5 === 0 ? 'MR' : 'CT', n: 50 }],
  };
}

function instance(s, k, inst) {
  const ser = s.series[k];
  const seriesUid = `${s.uid}.${k + 1}`;
  const sop = `${seriesUid}.${inst + 1}`;
  const sopClass = ser.modality === 'MR' ? MR : CT;
  const meta = Buffer.concat([
    el(0x00020001, 'OB', Buffer.from([0, 1])),
    el(0x00020002, 'UI', uid(sopClass)),
    el(0x00020003, 'UI', uid(sop)),
    el(0x00020010, 'UI', uid('1.2.840.10008.1.2.1')),
    el(0x00020012, 'UI', uid('1.2.826.0.1.3680043.10.1515.1')),
  ]);
  const ds = Buffer.concat([
    el(0x00080016, 'UI', uid(sopClass)),
    el(0x00080018, 'UI', uid(sop)),
    el(0x00080020, 'DA', str(s.date)),
    el(0x00080050, 'SH', str(s.accession)),
    el(0x00080060, 'CS', str(ser.modality)),
    el(0x00081030, 'LO', str('SCALE BENCH')),
    el(0x00100010, 'PN', str(s.patientName)),
    el(0x00100020, 'LO', str(s.patientId)),
    el(0x00100030, 'DA', str('19700101')),
    el(0x00100040, 'CS', str('O')),
    el(0x0020000d, 'UI', uid(s.uid)),
    el(0x0020000e, 'UI', uid(seriesUid)),
    el(0x00200010, 'SH', str(String(s.i))),
    el(0x00200011, 'IS', str(String(k + 1))),
    el(0x00200013, 'IS', str(String(inst + 1))),
    el(0x00280002, 'US', us(1)),
    el(0x00280004, 'CS', str('MONOCHROME2')),
    el(0x00280010, 'US', us(8)),
    el(0x00280011, 'US', us(8)),
    el(0x00280100, 'US', us(16)),
    el(0x00280101, 'US', us(16)),
    el(0x00280102, 'US', us(15)),
    el(0x00280103, 'US', us(0)),
    el(0x7fe00010, 'OW', PIXELS),
  ]);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), el(0x00020000, 'UL', ul(meta.length)), meta, ds]);
}

/** Every instance of the archive, in ingest order, as [study, seriesIndex, instanceIndex]. */
function* plan() {
  for (let i = 0; i < STUDIES; i++) {
    const s = study(i);
    for (let k = 0; k < s.series.length; k++) for (let n = 0; n < s.series[k].n; n++) yield [s, k, n];
  }
}

// ---- HTTPS client (one keep-alive agent per role)
let ca;
function call(agent, method, pathname, { token, body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: HTTP_PORT, method, path: pathname, ca, agent, headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
const json = async (agent, method, pathname, opts = {}) => {
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  const r = await call(agent, method, pathname, { ...opts, body, headers: body ? { 'content-type': 'application/json' } : {} });
  if (r.status >= 300) throw new Error(`${method} ${pathname}: ${r.status} ${r.body.toString().slice(0, 300)}`);
  return r.body.length ? JSON.parse(r.body.toString()) : {};
};

// ---- start a fresh Tresor on PostgreSQL
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pidFile = path.join(work, 'tresor.pid');
try {
  process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM');
  await sleep(1000);
} catch {
  /* none running */
}
if (!reuse) fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const dbUrl = new URL(process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const dbName = 'tresor_bench_scale';
if (!reuse) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: dbUrl.href });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await c.query(`CREATE DATABASE ${dbName}`);
  await c.end();
}
dbUrl.pathname = `/${dbName}`;
const adminPassword = reuse?.adminPassword ?? randomBytes(18).toString('base64url');
const child = spawn(process.execPath, [path.join(repo, 'dist/src/cli.js'), 'serve'], {
  env: {
    ...process.env,
    TRESOR_DATA_DIR: path.join(work, 'data'),
    TRESOR_HTTP_PORT: String(HTTP_PORT),
    TRESOR_DIMSE_PORT: String(DIMSE_PORT),
    TRESOR_ADMIN_PASSWORD: adminPassword,
    TRESOR_TOKEN_TTL_SECONDS: '3600',
    TRESOR_LOG_LEVEL: 'warn',
    DATABASE_URL: dbUrl.href,
  },
  stdio: ['ignore', fs.openSync(path.join(work, 'tresor.log'), 'w'), fs.openSync(path.join(work, 'tresor.log'), 'a')],
});
fs.writeFileSync(pidFile, String(child.pid));
const stop = () => (process.env.SCALE_KEEP === '1' ? undefined : child.kill('SIGTERM'));
process.on('exit', stop);
const caFile = path.join(work, 'data', 'tls', 'ca.crt');
for (let i = 0; ; i++) {
  if (fs.existsSync(caFile)) {
    ca = fs.readFileSync(caFile);
    try {
      if ((await call(undefined, 'GET', '/healthz')).status === 200) break;
    } catch {
      /* not yet */
    }
  }
  if (i > 600) throw new Error(`Tresor did not start; see ${path.join(work, 'tresor.log')}`);
  await sleep(100);
}

const adminAgent = new https.Agent({ keepAlive: true, maxSockets: 1 });
const readerAgent = new https.Agent({ keepAlive: true, maxSockets: 1 });
const stowAgent = new https.Agent({ keepAlive: true, maxSockets: PARALLEL });
const admin = (await json(adminAgent, 'POST', '/auth/token', { json: { username: 'admin', password: adminPassword } })).access_token;
const depts = Array.from({ length: DEPARTMENTS }, (_, d) => `Scale D${String(d + 1).padStart(2, '0')}`);
const pw = () => randomBytes(18).toString('base64url');
const writerPw = reuse?.writerPw ?? pw();
const readerPw = reuse?.readerPw ?? pw();
if (!reuse) {
  for (const name of depts) await json(adminAgent, 'POST', '/admin/departments', { token: admin, json: { name } });
  await json(adminAgent, 'POST', '/admin/users', { token: admin, json: { username: 'scale-writer', password: writerPw, roles: depts.map((department) => ({ department, role: 'writer' })) } });
  await json(adminAgent, 'POST', '/admin/users', { token: admin, json: { username: 'scale-reader', password: readerPw, roles: [{ department: depts[0], role: 'reader' }] } });
}
const writer = (await json(stowAgent, 'POST', '/auth/token', { json: { username: 'scale-writer', password: writerPw } })).access_token;
const reader = (await json(readerAgent, 'POST', '/auth/token', { json: { username: 'scale-reader', password: readerPw } })).access_token;

// ---- ingest: batches of one study's instances, PARALLEL requests at a time
const boundary = `scale-${randomBytes(8).toString('hex')}`;
function stowBody(items) {
  const parts = [];
  for (const it of items) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), instance(...it), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}
function* batches() {
  let cur = [];
  for (const it of plan()) {
    if (cur.length && (cur.length >= BATCH || cur[0][0] !== it[0])) {
      yield cur;
      cur = [];
    }
    cur.push(it);
  }
  if (cur.length) yield cur;
}
const total = [...plan()].length;
let stored = 0;
let failed = 0;
const marks = []; // [instancesStored, ms]
const ingestStart = Date.now();
const it = batches();
let lastPrint = 0;
async function worker() {
  for (let next = it.next(); !next.done; next = it.next()) {
    const items = next.value;
    const s = items[0][0];
    const r = await call(stowAgent, 'POST', `/dicomweb/studies?department=${encodeURIComponent(s.department)}`, {
      token: writer,
      body: stowBody(items),
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json' },
    });
    if (r.status !== 200) {
      failed += items.length;
      if (failed <= BATCH) console.error(`STOW ${r.status}: ${r.body.toString().slice(0, 300)}`);
    } else stored += items.length;
    marks.push([stored + failed, Date.now()]);
    if (Date.now() - lastPrint > 30_000) {
      lastPrint = Date.now();
      const s = (Date.now() - ingestStart) / 1000;
      console.error(`[scale] ${stored + failed}/${total} instances in ${s.toFixed(0)} s (${((stored + failed) / s).toFixed(0)}/s)`);
    }
  }
}
if (!reuse) await Promise.all(Array.from({ length: PARALLEL }, worker));
const ingestS = reuse?.ingest.seconds ?? (Date.now() - ingestStart) / 1000;
/** Instances per second between the marks around [from, to) instances. */
function rate(from, to) {
  const a = marks.find(([n]) => n >= from) ?? marks[0];
  const b = marks.find(([n]) => n >= to) ?? marks[marks.length - 1];
  return (b[0] - a[0]) / ((b[1] - a[1]) / 1000);
}
const w = Math.min(WINDOW, Math.floor(total / 4));
const rateEmpty = reuse?.ingest.rateEmpty ?? rate(0, w);
const rateFull = reuse?.ingest.rateFull ?? rate(total - w, total);
if (reuse) ({ stored, failed } = reuse.ingest);
const state = { studies: STUDIES, root: ROOT, adminPassword, writerPw, readerPw, ingest: { seconds: ingestS, rateEmpty, rateFull, stored, failed }, tokens: { admin, reader } };
fs.writeFileSync(stateFile, JSON.stringify(state), { mode: 0o600 });

// ---- reads
const s100 = study(DEPARTMENTS); // both in department D01: the reader sees them
const sBig = study(0);
const queries = [
  ['studies?limit=100', '/dicomweb/studies?limit=100', 10],
  ['studies?ModalitiesInStudy=MR', '/dicomweb/studies?ModalitiesInStudy=MR', 10],
  ['studies?PatientName=*SON', '/dicomweb/studies?PatientName=*SON', 10],
  ['studies?StudyDate=20220101-20221231', '/dicomweb/studies?StudyDate=20220101-20221231', 10],
  ['studies?AccessionNumber=…', `/dicomweb/studies?AccessionNumber=${s100.accession}`, 10],
  ['studies?PatientID=…', `/dicomweb/studies?PatientID=${s100.patientId}`, 10],
  ['100-instance study /instances', `/dicomweb/studies/${s100.uid}/instances`, 10],
  ['100-instance study /metadata', `/dicomweb/studies/${s100.uid}/metadata`, 10],
  ['1,000-instance series /instances', `/dicomweb/studies/${sBig.uid}/series/${sBig.uid}.1/instances`, 40],
  ['1,000-instance series /metadata', `/dicomweb/studies/${sBig.uid}/series/${sBig.uid}.1/metadata`, 40],
];
async function p50(agent, token, url) {
  const ms = [];
  let status = 0;
  let count = 0;
  for (let i = 0; i < RUNS + 3; i++) {
    const a = process.hrtime.bigint();
    const r = await call(agent, 'GET', url, { token, headers: { accept: 'application/dicom+json' } });
    const t = Number(process.hrtime.bigint() - a) / 1e6;
    status = r.status;
    if (i === 0) count = r.status === 200 ? JSON.parse(r.body.toString()).length : 0;
    if (i >= 3) ms.push(t); // the first three warm the connection and caches
  }
  ms.sort((x, y) => x - y);
  return { p50: ms[Math.floor(ms.length / 2)], status, count };
}
const rows = [];
for (const [name, url, goal] of queries) {
  const r = await p50(readerAgent, reader, url);
  const a = await p50(adminAgent, admin, url);
  rows.push({ name, goal, r, a });
}
stop();

const git = (...a) => spawnSync('git', ['-C', repo, ...a], { encoding: 'utf8' }).stdout.trim();
const fmt = (x) => x.toFixed(1);
console.log(`# bench:scale — Tresor commit ${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' (with uncommitted changes)' : ''} on PostgreSQL; load ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
console.log(`# ${STUDIES} studies, ${DEPARTMENTS} departments, ${total} instances (${stored} stored, ${failed} failed) in ${ingestS.toFixed(0)} s; STOW-RS, ${PARALLEL} parallel requests of ≤ ${BATCH}${reuse ? ' (the ingest of an earlier run: SCALE_REUSE)' : ''}`);
console.log('\n| ingest | instances/s |\n|---|---:|');
console.log(`| first ${w} instances (empty archive) | ${rateEmpty.toFixed(1)} |`);
console.log(`| last ${w} instances (full archive) | ${rateFull.toFixed(1)} |`);
console.log(`| full / empty (goal ≥ 0.80) | ${(rateFull / rateEmpty).toFixed(2)} |`);
console.log(`\n| read (p50 of ${RUNS}, ms) | reader of one department | global admin | goal | answers (reader / admin) |\n|---|---:|---:|---:|---|`);
for (const { name, goal, r, a } of rows) {
  console.log(`| ${name} | ${fmt(r.p50)} | ${fmt(a.p50)} | ≤ ${goal} | ${r.count} / ${a.count}${r.status === 200 && a.status === 200 ? '' : ` (HTTP ${r.status} ${a.status})`} |`);
}
console.log(`\nduration: ${((Date.now() - t0) / 60000).toFixed(1)} min (must be ≤ 30)`);

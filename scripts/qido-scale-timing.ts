// Issue 13 item 3: QIDO-RS and WADO-RS metadata reads at archive scale, measured in
// process (Fastify inject: no TLS, no sockets — the server's own time) on PostgreSQL.
//   npx tsx scripts/qido-scale-timing.ts            seeds when the database is empty, then times
// The archive: three template studies ingested through STOW-RS (a 1,000-instance series;
// 2 CT series of 50; CT + MR series of 50), then multiplied by scripts/seed-scale.sql to
// 1,000 studies (100,900 instances) in 10 departments. Timed: p50 of RUNS requests (after
// 3 warm-ups) as a reader of department D01 (where both timed studies are) and as the
// global admin. Targets (issue 13): 10 ms for each QIDO and the 100-instance study, 40 ms
// for the 1,000-instance series. Speed targets live here, never in timed tests.
//   env: SCALE_DB_URL (default postgres://postgres@127.0.0.1:5432/tresor_qido), RUNS (30),
//        SCALE_DIR (blobs and data directory, default /tmp/qido-scale), ONLY (run the reads whose name contains it)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDeps } from '../src/deps.js';
import { migrate, openDb } from '../src/db/knex.js';
import { buildApp } from '../src/http/app.js';
import { httpsOptions } from '../src/http/tls.js';
import { createLogger } from '../src/log.js';
import { createFsBlobStore } from '../src/storage/fs-store.js';
import { testConfig } from '../test/helpers/config.js';
import { sharedTestPki } from '../test/helpers/pki.js';

const DB_URL = process.env.SCALE_DB_URL ?? 'postgres://postgres@127.0.0.1:5432/tresor_qido';
const RUNS = Number(process.env.RUNS ?? 30);
const DIR = process.env.SCALE_DIR ?? '/tmp/qido-scale';
const PASSWORD = 'scale timing password 1';
const here = path.dirname(fileURLToPath(import.meta.url));

// ---- synthetic instances (PS3.10, Explicit VR Little Endian), as bench-scale.mjs makes them
const LONG_VRS = new Set(['OB', 'OW', 'SQ', 'UN', 'UT']);
function el(tag: number, vr: string, value: Buffer): Buffer {
  const long = LONG_VRS.has(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(tag >>> 16, 0);
  h.writeUInt16LE(tag & 0xffff, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const str = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const uid = (s: string) => str(s, '\0');
const us = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
const ul = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const PIXELS = Buffer.alloc(8 * 8 * 2, 7);
const ROOT = '2.25.1313131313';
interface Tmpl { uid: string; studyId: string; name: string; series: { modality: string; n: number }[] }
const TEMPLATES: Tmpl[] = [
  { uid: `${ROOT}.1`, studyId: 'TBIG', name: 'MILLER', series: [{ modality: 'CT', n: 1000 }] },
  { uid: `${ROOT}.2`, studyId: 'TCT', name: 'JOHNSON', series: [{ modality: 'CT', n: 50 }, { modality: 'CT', n: 50 }] },
  { uid: `${ROOT}.3`, studyId: 'TMR', name: 'GARCIA', series: [{ modality: 'CT', n: 50 }, { modality: 'MR', n: 50 }] },
];
function instance(s: Tmpl, k: number, inst: number): Buffer {
  const modality = s.series[k].modality;
  const seriesUid = `${s.uid}.${k + 1}`;
  const sop = `${seriesUid}.${inst + 1}`;
  const sopClass = modality === 'MR' ? MR : CT;
  const meta = Buffer.concat([
    el(0x00020001, 'OB', Buffer.from([0, 1])),
    el(0x00020002, 'UI', uid(sopClass)),
    el(0x00020003, 'UI', uid(sop)),
    el(0x00020010, 'UI', uid('1.2.840.10008.1.2.1')),
    el(0x00020012, 'UI', uid('1.2.826.0.1.3680043.10.1515.1')),
  ]);
  const ds = Buffer.concat([
    el(0x00080016, 'UI', uid(sopClass)), el(0x00080018, 'UI', uid(sop)), el(0x00080020, 'DA', str('20220315')),
    el(0x00080050, 'SH', str(`ACC-${s.studyId}`)), el(0x00080060, 'CS', str(modality)), el(0x00081030, 'LO', str('SCALE TIMING')),
    el(0x00100010, 'PN', str(s.name)), el(0x00100020, 'LO', str(`PID-${s.studyId}`)), el(0x00100030, 'DA', str('19700101')),
    el(0x00100040, 'CS', str('O')), el(0x0020000d, 'UI', uid(s.uid)), el(0x0020000e, 'UI', uid(seriesUid)),
    el(0x00200010, 'SH', str(s.studyId)), el(0x00200011, 'IS', str(String(k + 1))), el(0x00200013, 'IS', str(String(inst + 1))),
    el(0x00280002, 'US', us(1)), el(0x00280004, 'CS', str('MONOCHROME2')), el(0x00280010, 'US', us(8)), el(0x00280011, 'US', us(8)),
    el(0x00280100, 'US', us(16)), el(0x00280101, 'US', us(16)), el(0x00280102, 'US', us(15)), el(0x00280103, 'US', us(0)),
    el(0x7fe00010, 'OW', PIXELS),
  ]);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), el(0x00020000, 'UL', ul(meta.length)), meta, ds]);
}

fs.mkdirSync(path.join(DIR, 'data'), { recursive: true });
const db = await openDb({ url: DB_URL });
const tMigrate = Date.now();
const applied = await migrate(db);
if (applied.length) console.log(`migrated (${applied.join(', ')}) in ${((Date.now() - tMigrate) / 1000).toFixed(1)} s`);
const blobs = await createFsBlobStore(path.join(DIR, 'blobs'));
const deps = await createDeps(testConfig(path.join(DIR, 'data')), createLogger('silent'), { db, blobs, pki: (await sharedTestPki()).pki });
const app = await buildApp(deps, { https: httpsOptions(deps.pki), authRateLimit: { max: 100_000, timeWindowMs: 60_000 } });
await app.ready();

async function call(method: string, url: string, o: { token?: string; body?: unknown; payload?: Buffer; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  return app.inject({ method: method as 'GET', url, headers, ...(o.payload ? { payload: o.payload } : o.body !== undefined ? { payload: o.body as object } : {}) });
}
async function login(username: string): Promise<string> {
  const r = await call('POST', '/auth/token', { body: { username, password: PASSWORD } });
  if (r.statusCode !== 200) throw new Error(`login ${username}: ${r.statusCode} ${r.body}`);
  return r.json().access_token;
}

const depts = Array.from({ length: 10 }, (_, d) => `Scale D${String(d + 1).padStart(2, '0')}`);
const seeded = Number((await db('studies').count('* as n').first())?.n ?? 0) > 0;
if (!seeded) {
  const t0 = Date.now();
  await deps.identity.bootstrapAdmin({ adminPassword: PASSWORD });
  const admin = await login('admin');
  for (const name of depts) {
    const r = await call('POST', '/admin/departments', { token: admin, body: { name } });
    if (r.statusCode !== 201) throw new Error(`department: ${r.statusCode} ${r.body}`);
  }
  for (const [username, roles, globalAdmin] of [
    ['scale-writer', depts.map((department) => ({ department, role: 'writer' })), false],
    ['scale-reader', [{ department: depts[0], role: 'reader' }], false],
    ['scale-admin', [], true],
  ] as const) {
    const r = await call('POST', '/admin/users', { token: admin, body: { username, password: PASSWORD, roles, globalAdmin } });
    if (r.statusCode !== 201) throw new Error(`user: ${r.statusCode} ${r.body}`);
  }
  const writer = await login('scale-writer');
  const boundary = 'scale-timing-boundary';
  for (const s of TEMPLATES) {
    for (let k = 0; k < s.series.length; k++) {
      for (let from = 0; from < s.series[k].n; from += 50) {
        const parts: Buffer[] = [];
        for (let i = from; i < Math.min(from + 50, s.series[k].n); i++) {
          parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), instance(s, k, i), Buffer.from('\r\n'));
        }
        parts.push(Buffer.from(`--${boundary}--\r\n`));
        const r = await call('POST', `/dicomweb/studies?department=${encodeURIComponent(depts[0])}`, {
          token: writer,
          payload: Buffer.concat(parts),
          headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json' },
        });
        if (r.statusCode !== 200) throw new Error(`STOW: ${r.statusCode} ${r.body.slice(0, 300)}`);
      }
    }
  }
  // The rest by SQL: fast, and the same rows the ingest path writes (copied from the templates).
  execFileSync('psql', ['-v', 'ON_ERROR_STOP=1', '-q', '-f', path.join(here, 'seed-scale.sql'), DB_URL], { stdio: 'inherit' });
  console.error(`seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
const counts = (await db.raw(`SELECT (SELECT count(*) FROM studies) AS st, (SELECT count(*) FROM series) AS se, (SELECT count(*) FROM instances) AS i, (SELECT count(DISTINCT department_id) FROM studies) AS d`)).rows[0];
console.log(`archive: ${counts.i} instances, ${counts.se} series, ${counts.st} studies, ${counts.d} departments; migrations: ${(await db('knex_migrations').max('name as m').first())?.m}`);

const reader = await login('scale-reader');
const admin = await login('scale-admin');
const [big, hundred] = TEMPLATES;
const queries: [string, string, number][] = [
  ['studies?limit=100', '/dicomweb/studies?limit=100', 10],
  ['studies?ModalitiesInStudy=MR', '/dicomweb/studies?ModalitiesInStudy=MR', 10],
  ['studies?PatientName=*SON', '/dicomweb/studies?PatientName=*SON', 10],
  ['studies?StudyDate=20220101-20221231', '/dicomweb/studies?StudyDate=20220101-20221231', 10],
  ['studies?AccessionNumber=…', `/dicomweb/studies?AccessionNumber=ACC-${hundred.studyId}`, 10],
  ['studies?PatientID=…', `/dicomweb/studies?PatientID=PID-${hundred.studyId}`, 10],
  ['100-instance study /instances', `/dicomweb/studies/${hundred.uid}/instances`, 10],
  ['100-instance study /metadata', `/dicomweb/studies/${hundred.uid}/metadata`, 10],
  ['1,000-instance series /instances', `/dicomweb/studies/${big.uid}/series/${big.uid}.1/instances`, 40],
  ['1,000-instance series /metadata', `/dicomweb/studies/${big.uid}/series/${big.uid}.1/metadata`, 40],
];
// Wall time, and this process's CPU time (user + system) for the same request: on a shared
// machine the wall time moves with the load, the CPU time much less.
async function p50(token: string, url: string): Promise<{ ms: number; cpu: number; matches: number }> {
  const ms: number[] = [];
  const cpu: number[] = [];
  let matches = 0;
  for (let i = 0; i < RUNS + 3; i++) {
    const c = process.cpuUsage();
    const a = process.hrtime.bigint();
    const r = await call('GET', url, { token, headers: { accept: 'application/dicom+json' } });
    const t = Number(process.hrtime.bigint() - a) / 1e6;
    const u = process.cpuUsage(c);
    if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode} ${r.body.slice(0, 200)}`);
    // Parsed once: the client's garbage would otherwise be collected during the next timed request.
    if (i === RUNS + 2) matches = r.json().length;
    if (i >= 3) {
      ms.push(t);
      cpu.push((u.user + u.system) / 1000);
    }
  }
  const mid = (x: number[]) => x.sort((p, q) => p - q)[Math.floor(x.length / 2)];
  return { ms: mid(ms), cpu: mid(cpu), matches };
}
console.log(`${'read'.padEnd(36)} ${'reader p50'.padStart(11)} ${'admin p50'.padStart(10)}  target  matches (reader/admin)  node CPU p50 (reader/admin)`);
for (const [name, url, target] of queries.filter(([n]) => !process.env.ONLY || n.includes(process.env.ONLY))) {
  const r = await p50(reader, url);
  const a = await p50(admin, url);
  const ok = r.ms <= target && a.ms <= target ? 'ok' : 'OVER';
  console.log(`${name.padEnd(36)} ${r.ms.toFixed(1).padStart(8)} ms ${a.ms.toFixed(1).padStart(7)} ms  ${String(target).padStart(3)} ms  ${`${r.matches}/${a.matches} ${ok}`.padEnd(22)} ${r.cpu.toFixed(1)}/${a.cpu.toFixed(1)} ms`);
}
await app.close();
await deps.close();
await blobs.close();
await db.destroy();

#!/usr/bin/env node
// Starts a fresh Tresor for the shared benchmark harness (../shared/bench) and
// writes the target.env that run.sh reads. Used as RESET_CMD before every repeat:
// stops the previous instance, wipes its data directory, starts a new one on
// embedded defaults, and provisions through the real admin API: a department, the
// device BENCHSCU (reader + writer, C-MOVE destination 127.0.0.1:11113) with a
// certificate issued by Tresor's CA, and a DICOMweb user with a token.
// With --edge, the target is the same Tresor behind `tresor edge` (issue 12): the
// clients speak plain DICOM to the edge, which relays to Tresor over mutual TLS with
// BENCHSCU's certificate (other ports, so that both targets can run in one compare).
// With --pg, Tresor runs on PostgreSQL (a fresh database `tresor_bench_<DIMSE port>`
// on the server of BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres)
// instead of the embedded database (other ports again).
// BENCH_TRESOR_REPO runs another build (its dist/) with this script: A/B runs of two commits.
//   usage: node scripts/bench-provision.mjs WORK_DIR [--edge] [--pg]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(process.env.BENCH_TRESOR_REPO ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const work = path.resolve(process.argv[2] ?? '/tmp/pacs-bench/tresor');
const viaEdge = process.argv.includes('--edge');
const onPg = process.argv.includes('--pg');
const edgePidFile = path.join(work, 'edge.pid');
const EDGE_PORT = Number(process.env.TRESOR_BENCH_EDGE_PORT ?? 11122);
const dataDir = path.join(work, 'data');
const pidFile = path.join(work, 'tresor.pid');
const HTTP_PORT = Number(process.env.TRESOR_BENCH_HTTP_PORT ?? (viaEdge ? 8453 : onPg ? 8463 : 8443));
const DIMSE_PORT = Number(process.env.TRESOR_BENCH_DIMSE_PORT ?? (viaEdge ? 2772 : onPg ? 2782 : 2762));

fs.mkdirSync(work, { recursive: true });
if (fs.existsSync(edgePidFile)) {
  try {
    process.kill(Number(fs.readFileSync(edgePidFile, 'utf8')), 'SIGTERM');
  } catch {
    /* gone */
  }
  fs.rmSync(edgePidFile, { force: true });
}
if (fs.existsSync(pidFile)) {
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  try {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100; i++) {
      process.kill(pid, 0);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch {
    /* gone */
  }
  fs.rmSync(pidFile, { force: true });
}
fs.rmSync(dataDir, { recursive: true, force: true });
let databaseUrl;
if (onPg) {
  const admin = new URL(process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const name = `tresor_bench_${DIMSE_PORT}`;
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: admin.href });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  admin.pathname = `/${name}`;
  databaseUrl = admin.href;
}

const adminPassword = randomBytes(18).toString('base64url');
const log = fs.openSync(path.join(work, 'tresor.log'), 'w');
// BENCH_NODE_ARGS: extra node flags for the server (e.g. --cpu-prof --cpu-prof-dir=DIR).
const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const child = spawn(process.execPath, [...nodeArgs, path.join(repo, 'dist/src/cli.js'), 'serve'], {
  env: {
    ...process.env,
    TRESOR_DATA_DIR: dataDir,
    TRESOR_HTTP_PORT: String(HTTP_PORT),
    TRESOR_DIMSE_PORT: String(DIMSE_PORT),
    TRESOR_ADMIN_PASSWORD: adminPassword,
    TRESOR_TOKEN_TTL_SECONDS: '3600',
    TRESOR_LOG_LEVEL: process.env.TRESOR_LOG_LEVEL ?? 'warn',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  },
  detached: true,
  stdio: ['ignore', log, log],
});
child.unref();
fs.writeFileSync(pidFile, String(child.pid));

const base = `https://127.0.0.1:${HTTP_PORT}`;
const caFile = path.join(dataDir, 'tls', 'ca.crt');
// Node's fetch takes the CA from NODE_EXTRA_CA_CERTS only at start; use https instead.
const https = await import('node:https');
function call(method, pathname, body, token) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      { host: '127.0.0.1', port: HTTP_PORT, method, path: pathname, ca: fs.readFileSync(caFile), headers: { ...(data ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) } },
      (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => (res.statusCode < 300 ? resolve(s ? JSON.parse(s) : {}) : reject(new Error(`${method} ${pathname}: ${res.statusCode} ${s}`))));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

for (let i = 0; ; i++) {
  try {
    if (fs.existsSync(caFile)) {
      await call('GET', '/healthz');
      break;
    }
  } catch {
    /* not yet */
  }
  if (i > 600) throw new Error(`Tresor did not start; see ${path.join(work, 'tresor.log')}`);
  await new Promise((r) => setTimeout(r, 100));
}

const admin = (await call('POST', '/auth/token', { username: 'admin', password: adminPassword })).access_token;
await call('POST', '/admin/departments', { name: 'Bench' }, admin);
await call('POST', '/admin/devices', { aeTitle: 'BENCHSCU', roles: [{ department: 'Bench', role: 'reader' }, { department: 'Bench', role: 'writer' }], host: '127.0.0.1', port: 11113 }, admin);
const cert = await call('POST', '/admin/devices/BENCHSCU/certificate', {}, admin);
fs.writeFileSync(path.join(work, 'device.crt'), cert.certificate);
fs.writeFileSync(path.join(work, 'device.key'), cert.privateKey, { mode: 0o600 });
fs.writeFileSync(path.join(work, 'ca.crt'), cert.ca);
const userPassword = randomBytes(18).toString('base64url');
await call('POST', '/admin/users', { username: 'bench', password: userPassword, roles: [{ department: 'Bench', role: 'reader' }, { department: 'Bench', role: 'writer' }] }, admin);
const token = (await call('POST', '/auth/token', { username: 'bench', password: userPassword })).access_token;

let edgeEnv = '';
if (viaEdge) {
  // The bundle `tresor device bundle --edge` would write, from the certificate just issued.
  const { writeEdgeBundle } = await import(path.join(repo, 'dist/src/edge/bundle.js'));
  const edgeDir = path.join(work, 'edge');
  fs.rmSync(edgeDir, { recursive: true, force: true });
  const config = await writeEdgeBundle(edgeDir, {
    edgeName: 'BENCH',
    aeTitle: 'BENCHSCU',
    certificatePem: cert.certificate,
    privateKeyPem: cert.privateKey,
    caPem: cert.ca,
    tresor: { host: '127.0.0.1', port: DIMSE_PORT, aeTitle: 'TRESOR' },
    listen: { host: '127.0.0.1', port: EDGE_PORT },
    allow: ['127.0.0.1'],
  });
  const edgeLog = fs.openSync(path.join(work, 'edge.log'), 'w');
  const edge = spawn(process.execPath, [path.join(repo, 'dist/src/cli.js'), 'edge', '--config', config, '--log-level', process.env.TRESOR_LOG_LEVEL ?? 'warn'], { detached: true, stdio: ['ignore', edgeLog, edgeLog] });
  edge.unref();
  fs.writeFileSync(edgePidFile, String(edge.pid));
  const net = await import('node:net');
  for (let i = 0; ; i++) {
    const up = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: EDGE_PORT }, () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (i > 300) throw new Error(`tresor edge did not start; see ${path.join(work, 'edge.log')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // C-STORE throughput through the edge vs direct TLS is the point (issue 12); C-GET/C-MOVE need the harness's socat/TLS storescp.
  edgeEnv = `PHASES="${process.env.PHASES ?? 'echo cstore cstore_par stow verify'}"\n`;
}

const env = `# written by scripts/bench-provision.mjs (contains a bearer token: do not commit)
TARGET_NAME=${viaEdge ? 'tresor-edge' : onPg ? 'tresor-pg' : 'tresor'}
DICOM_HOST=127.0.0.1
DICOM_PORT=${viaEdge ? EDGE_PORT : DIMSE_PORT}
DICOM_AET=TRESOR
CALLING_AET=BENCHSCU
TLS=${viaEdge ? 0 : 1}
${edgeEnv}TLS_CA=${work}/ca.crt
TLS_CERT=${work}/device.crt
TLS_KEY=${work}/device.key
MOVE_DEST_AET=BENCHSCU
MOVE_DEST_PORT=11113
MOVE_DEST_CERT=${work}/device.crt
MOVE_DEST_KEY=${work}/device.key
DICOMWEB_URL=${base}/dicomweb
AUTH_HEADER="Authorization: Bearer ${token}"
HTTP_CACERT=${work}/ca.crt
RESET_CMD="${process.env.BENCH_TRESOR_REPO ? `BENCH_TRESOR_REPO=${repo} ` : ''}node ${fileURLToPath(import.meta.url)} ${work}${viaEdge ? ' --edge' : ''}${onPg ? ' --pg' : ''}"
`;
fs.writeFileSync(path.join(work, 'target.env'), env, { mode: 0o600 });
process.stdout.write(`tresor ready (pid ${child.pid}); target: ${path.join(work, 'target.env')}\n`);

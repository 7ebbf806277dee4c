// Issue 13 item 1: durability of ingest under SIGKILL. Four storescu processes send
// over mutual TLS to a real `tresor serve` in its own process; the server is killed
// with SIGKILL mid-ingest and started again on the same data. Every instance whose
// Success status a client received must come back with its data set byte-identical
// (WADO-RS; the Part 10 meta header is the receiver's own), and
// nothing may be orphaned: after the start-up sweep no blob without a row, no row
// without a blob, no journal entry, no temporary file.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { sweepBlobJournal } from '../../src/core/blob-journal.js';
import { createBlobJournalRepo } from '../../src/db/blob-journal.repo.js';
import { openDb, type Db } from '../../src/db/knex.js';
import { createFsBlobStore } from '../../src/storage/fs-store.js';
import { freePort } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const ROOT = path.resolve(__dirname, '../..');
const CLIENTS = 4;
const PER_CLIENT = 40;
const SAMPLE_SOP_UID = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322';
const STUDY_UID = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const SERIES_UID = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
});

interface Server {
  child: ChildProcess;
  log: () => string;
}

async function startServer(env: NodeJS.ProcessEnv, waitFor = 'tresor is listening'): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (c) => (log += c));
  child.stderr!.on('data', (c) => (log += c));
  cleanup.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const deadline = Date.now() + 120_000;
  while (!log.includes(waitFor)) {
    if (child.exitCode !== null) throw new Error(`tresor exited early:\n${log}`);
    if (Date.now() > deadline) throw new Error(`tresor did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, log: () => log };
}

function call(port: number, ca: string, method: string, pathname: string, body?: unknown, token?: string, accept?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: pathname,
        ca,
        headers: { ...(data ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}), ...(accept ? { accept } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function json(port: number, ca: string, method: string, pathname: string, body?: unknown, token?: string): Promise<any> {
  const r = await call(port, ca, method, pathname, body, token);
  if (r.status >= 300) throw new Error(`${method} ${pathname}: ${r.status} ${r.body.toString()}`);
  return r.body.length ? JSON.parse(r.body.toString()) : {};
}

/** The one Part 10 part of a multipart/related answer (PS3.18 §8.7.3.2). */
function onlyPart(body: Buffer): Buffer {
  const firstLineEnd = body.indexOf('\r\n');
  const boundary = body.subarray(0, firstLineEnd).toString();
  const start = body.indexOf('\r\n\r\n') + 4;
  const end = body.indexOf(`\r\n${boundary}`, start);
  return body.subarray(start, end);
}

/**
 * The data set of a Part 10 file: what C-STORE carries. The meta header (PS3.10 §7.1)
 * is rebuilt by the receiver, so it is left out of the comparison; its group length
 * (0002,0000), explicit VR UL, sits right after the preamble and "DICM".
 */
function dataSet(part10: Buffer): Buffer {
  expect(part10.subarray(128, 132).toString('latin1')).toBe('DICM');
  expect(part10.readUInt16LE(132)).toBe(0x0002);
  expect(part10.readUInt16LE(134)).toBe(0x0000);
  const ds = part10.subarray(144 + part10.readUInt32LE(140));
  // storescu does not send the sample's trailing padding (FFFC,FFFC), explicit VR OB, last in the file.
  const padding = ds.lastIndexOf(Buffer.from([0xfc, 0xff, 0xfc, 0xff, 0x4f, 0x42, 0, 0]));
  return padding >= 0 && padding + 12 + ds.readUInt32LE(padding + 8) === ds.length ? ds.subarray(0, padding) : ds;
}

/** Which files a storescu -v run was answered Success for (one request at a time, in order). */
function acknowledged(output: string): string[] {
  const ok: string[] = [];
  let current: string | undefined;
  for (const line of output.split('\n')) {
    const sending = /Sending file: (.+)$/.exec(line);
    if (sending) current = sending[1].trim();
    else if (/Received Store Response \(Success\)/.test(line) && current) {
      ok.push(current);
      current = undefined;
    }
  }
  return ok;
}

async function databases(): Promise<{ name: string; url?: string }[]> {
  const out: { name: string; url?: string }[] = [{ name: 'PGlite' }];
  const admin = process.env.TEST_DATABASE_URL;
  if (admin) {
    const name = `tresor_crash_${randomBytes(6).toString('hex')}`;
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    cleanup.push(async () => {
      const d = new pg.Client({ connectionString: admin });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    });
    const u = new URL(admin);
    u.pathname = `/${name}`;
    out.push({ name: 'PostgreSQL', url: u.href });
  }
  return out;
}

describe.each(await databases())('SIGKILL during a 4-association C-STORE ingest ($name)', ({ url }) => {
  it('every acknowledged instance comes back byte-identical after the restart, and nothing is orphaned', async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-crash-'));
    cleanup.push(() => fs.rmSync(work, { recursive: true, force: true }));
    const dataDir = path.join(work, 'data');
    const httpPort = await freePort();
    const dimsePort = await freePort();
    const adminPassword = randomBytes(18).toString('base64url');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TRESOR_DATA_DIR: dataDir,
      TRESOR_HTTP_PORT: String(httpPort),
      TRESOR_DIMSE_PORT: String(dimsePort),
      TRESOR_ADMIN_PASSWORD: adminPassword,
      TRESOR_LOG_LEVEL: 'info',
    };
    delete env.DATABASE_URL;
    if (url) env.DATABASE_URL = url;

    // Distinct instances of one study: the sample with its SOP Instance UID replaced by
    // one of the same length (meta header and data set), so every length stays valid.
    const sample = fs.readFileSync(path.join(SAMPLE_DIR, 'CT_small.dcm'));
    const files: string[][] = [];
    const source = new Map<string, { sha: string; sop: string }>();
    for (let c = 0; c < CLIENTS; c++) {
      const dir = path.join(work, `in-${c}`);
      fs.mkdirSync(dir);
      files.push([]);
      for (let i = 0; i < PER_CLIENT; i++) {
        const sop = SAMPLE_SOP_UID.replace(/12322$/, String(10000 + c * 1000 + i));
        const bytes = Buffer.from(sample.toString('latin1').split(SAMPLE_SOP_UID).join(sop), 'latin1');
        const f = path.join(dir, `${i}.dcm`);
        fs.writeFileSync(f, bytes);
        files[c].push(f);
        source.set(f, { sha: sha256(dataSet(bytes)), sop });
      }
    }

    let server = await startServer(env);
    const ca = fs.readFileSync(path.join(dataDir, 'tls', 'ca.crt'), 'utf8');
    const admin = (await json(httpPort, ca, 'POST', '/auth/token', { username: 'admin', password: adminPassword })).access_token;
    await json(httpPort, ca, 'POST', '/admin/departments', { name: 'Crash' }, admin);
    await json(httpPort, ca, 'POST', '/admin/devices', { aeTitle: 'CRASHSCU', roles: [{ department: 'Crash', role: 'writer' }] }, admin);
    const cert = await json(httpPort, ca, 'POST', '/admin/devices/CRASHSCU/certificate', {}, admin);
    fs.writeFileSync(path.join(work, 'device.crt'), cert.certificate);
    fs.writeFileSync(path.join(work, 'device.key'), cert.privateKey, { mode: 0o600 });
    fs.writeFileSync(path.join(work, 'ca.crt'), cert.ca);
    const readerPassword = randomBytes(18).toString('base64url');
    await json(httpPort, ca, 'POST', '/admin/users', { username: 'checker', password: readerPassword, roles: [{ department: 'Crash', role: 'reader' }] }, admin);

    // Four associations at once, each storescu answering one request at a time (-v names the file it sends).
    const outputs: string[] = Array.from({ length: CLIENTS }, () => '');
    const clients = files.map((list, c) => {
      const child = spawn(
        'storescu',
        ['-v', '-aet', 'CRASHSCU', '-aec', 'TRESOR', '+tls', path.join(work, 'device.key'), path.join(work, 'device.crt'), '+cf', path.join(work, 'ca.crt'), '127.0.0.1', String(dimsePort), ...list],
        { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child.stdout.on('data', (d) => (outputs[c] += d));
      child.stderr.on('data', (d) => (outputs[c] += d));
      cleanup.push(() => void child.kill('SIGKILL'));
      return new Promise<void>((resolve) => child.on('close', () => resolve()));
    });

    // Kill once a fair share is acknowledged, with more in flight.
    const target = Math.floor((CLIENTS * PER_CLIENT) / 3);
    const deadline = Date.now() + 120_000;
    while (outputs.reduce((n, o) => n + acknowledged(o).length, 0) < target) {
      if (Date.now() > deadline) throw new Error(`ingest too slow:\n${outputs.join('\n')}\n${server.log()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    server.child.kill('SIGKILL');
    await new Promise((r) => server.child.once('exit', r));
    await Promise.all(clients);
    const acked = outputs.flatMap(acknowledged);
    expect(acked.length).toBeGreaterThanOrEqual(target);
    expect(acked.length, 'the kill came before the end of the ingest').toBeLessThan(CLIENTS * PER_CLIENT);

    // Same data, a new process; the start-up sweep runs once it listens.
    server = await startServer(env);
    const deadlineSweep = Date.now() + 60_000;
    while (!server.log().includes('start-up blob sweep done')) {
      if (Date.now() > deadlineSweep) throw new Error(`no start-up sweep:\n${server.log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const token = (await json(httpPort, ca, 'POST', '/auth/token', { username: 'checker', password: readerPassword })).access_token;
    for (const f of acked) {
      const { sha, sop } = source.get(f)!;
      const r = await call(httpPort, ca, 'GET', `/dicomweb/studies/${STUDY_UID}/series/${SERIES_UID}/instances/${sop}`, undefined, token, 'multipart/related; type="application/dicom"; transfer-syntax=*');
      expect(r.status, sop).toBe(200);
      expect(sha256(dataSet(onlyPart(r.body))), sop).toBe(sha);
    }
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));

    // Offline: rows and blobs agree one to one, the journal is empty, no temp files.
    const db: Db = await openDb(url ? { url } : { embeddedDir: path.join(dataDir, 'pgdata') });
    try {
      const rows = (await db('instances').select('object_key', 'sha256')) as { object_key: string; sha256: string }[];
      const blobRoot = path.join(dataDir, 'blobs');
      const blobs = new Map<string, string>();
      for (const e of fs.readdirSync(path.join(blobRoot, 'objects'), { recursive: true, withFileTypes: true })) {
        if (e.isFile()) {
          const p = path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
          blobs.set(path.relative(blobRoot, p), sha256(fs.readFileSync(p)));
        }
      }
      if (url) {
        // PostgreSQL may be shared by several nodes: the start-up sweep leaves fresh entries
        // for an hour. Every blob without a row must be one of them, and the sweeper removes it.
        const journal = new Set((await db('blob_journal').pluck('object_key')) as string[]);
        for (const key of blobs.keys()) if (!rows.some((r) => r.object_key === key)) expect(journal.has(key), key).toBe(true);
        const store = await createFsBlobStore(blobRoot);
        await sweepBlobJournal({ repo: createBlobJournalRepo(db), blobs: store }, { minAgeMs: 0 });
        for (const key of [...blobs.keys()]) if (!fs.existsSync(path.join(blobRoot, key))) blobs.delete(key);
      }
      expect(await db('blob_journal').count({ n: '*' }).first()).toMatchObject({ n: 0 });
      expect(new Set(rows.map((r) => r.object_key))).toEqual(new Set(blobs.keys()));
      for (const r of rows) expect(blobs.get(r.object_key), r.object_key).toBe(r.sha256);
      expect(rows.length).toBeGreaterThanOrEqual(acked.length);
      expect(fs.readdirSync(path.join(blobRoot, 'tmp'))).toEqual([]);
      expect(fs.readdirSync(path.join(dataDir, 'tmp'))).toEqual([]);
    } finally {
      await db.destroy();
    }
  }, 300_000);
});

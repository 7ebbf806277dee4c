// Issue 2: `npm start` on embedded defaults brings up HTTPS with the generated
// certificate and writes the one-time admin password to a 0600 file, naming the
// file (never the password) in the log. Runs the real command in a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../src/db/knex.js';

const ROOT = path.resolve(__dirname, '../..');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function get(port: number, ca: string, pathname: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: pathname, ca }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      })
      .on('error', reject);
  });
}

describe('npm start on embedded defaults', () => {
  let dataDir: string;
  let child: ChildProcess;
  let log = '';
  let httpPort: number;
  let dimsePort: number;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-serve-'));
    httpPort = await freePort();
    dimsePort = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, TRESOR_DATA_DIR: dataDir, TRESOR_HTTP_PORT: String(httpPort), TRESOR_DIMSE_PORT: String(dimsePort) };
    delete env.TRESOR_ADMIN_PASSWORD;
    delete env.DATABASE_URL;
    child = spawn('npm', ['start', '--silent'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout!.on('data', (c) => (log += c));
    child.stderr!.on('data', (c) => (log += c));
    const deadline = Date.now() + 150_000;
    while (!log.includes('tresor is listening')) {
      if (child.exitCode !== null) throw new Error(`tresor exited early:\n${log}`);
      if (Date.now() > deadline) throw new Error(`tresor did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 180_000);

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid!, 'SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('generates a CA and two server certificates (RSA 3072 and ECDSA P-256), keys 0600', () => {
    for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'server-ec.crt', 'server-ec.key']) expect(fs.existsSync(path.join(dataDir, 'tls', f)), f).toBe(true);
    for (const f of ['ca.key', 'server.key', 'server-ec.key']) expect(fs.statSync(path.join(dataDir, 'tls', f)).mode & 0o777, f).toBe(0o600);
    const cert = new X509Certificate(fs.readFileSync(path.join(dataDir, 'tls', 'server.crt')));
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(cert.subjectAltName).toContain('DNS:localhost');
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    const ec = new X509Certificate(fs.readFileSync(path.join(dataDir, 'tls', 'server-ec.crt')));
    expect(ec.subjectAltName).toBe(cert.subjectAltName);
    expect(ec.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('serves the ECDSA certificate to TLS 1.3 clients and the RSA one to a TLS 1.2 client with ECDHE-RSA suites only (dcmtk 3.6.7\'s profile), on both ports', async () => {
    const ca = fs.readFileSync(path.join(dataDir, 'tls', 'ca.crt'), 'utf8');
    const fp = (f: string) => new X509Certificate(fs.readFileSync(path.join(dataDir, 'tls', f))).fingerprint256;
    const presented = (port: number, o: tls.ConnectionOptions) =>
      new Promise<{ fingerprint: string; protocol: string | null }>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca, ...o }, () => {
          resolve({ fingerprint: s.getPeerX509Certificate()!.fingerprint256, protocol: s.getProtocol() });
          s.destroy();
        });
        s.on('error', reject);
      });
    const rsaOnly = { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256' } as const;
    for (const port of [httpPort, dimsePort]) {
      expect(await presented(port, {})).toEqual({ fingerprint: fp('server-ec.crt'), protocol: 'TLSv1.3' });
      expect(await presented(port, rsaOnly)).toEqual({ fingerprint: fp('server.crt'), protocol: 'TLSv1.2' });
      // A TLS 1.2 client that can verify ECDSA gets it there too.
      expect((await presented(port, { maxVersion: 'TLSv1.2' })).fingerprint).toBe(fp('server-ec.crt'));
    }
  });

  it('serves GET /healthz over HTTPS with that certificate', async () => {
    const ca = fs.readFileSync(path.join(dataDir, 'tls', 'ca.crt'), 'utf8');
    const r = await get(httpPort, ca, '/healthz');
    expect(r.status).toBe(200);
    expect(r.headers['strict-transport-security']).toBeDefined();
  });

  it('refuses TLS 1.1 and plain HTTP', async () => {
    const ca = fs.readFileSync(path.join(dataDir, 'tls', 'ca.crt'), 'utf8');
    const old = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: httpPort, ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }, () => resolve('connected'));
      s.on('error', (e) => resolve(`error: ${e.message}`));
    });
    expect(old).toMatch(/^error/);
    const plain = await new Promise<string>((resolve) => {
      const s = net.connect(httpPort, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      let got = '';
      s.on('data', (c) => (got += c.toString('latin1')));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    expect(plain).not.toContain('200 OK');
  });

  it('writes the admin password to a 0600 file and logs the file, never the password', () => {
    const file = path.join(dataDir, 'initial-admin-password');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const password = fs.readFileSync(file, 'utf8').trim();
    expect(password.length).toBeGreaterThanOrEqual(16);
    expect(log).toContain(file);
    expect(log).not.toContain(password);
  });

  it('shuts down gracefully on SIGTERM; `tresor audit verify` checks the chain and names a tampered row', async () => {
    // SIGTERM to the process group, as a service manager does: npm passes on the
    // signal; Tresor closes its listeners and the database, logs "stopped", exits 0.
    process.kill(-child.pid!, 'SIGTERM');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    const deadline = Date.now() + 10_000;
    while (!log.includes('"msg":"stopped"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(log).toContain('"msg":"stopped"');
    expect(log).not.toMatch(/"level":(50|60)/); // no error or fatal on the way down

    const env: NodeJS.ProcessEnv = { ...process.env, TRESOR_DATA_DIR: dataDir };
    delete env.DATABASE_URL;
    const cli = path.join(ROOT, 'dist', 'src', 'cli.js');
    const intact = execFileSync(process.execPath, [cli, 'audit', 'verify'], { env, encoding: 'utf8' });
    expect(intact).toMatch(/audit trail intact: \d+ events/);
    // The shutdown wrote a signed checkpoint outside the database (issue 14 item 3).
    expect(intact).toMatch(/\d+ checkpoints; the last names event \d+/);
    expect(fs.statSync(path.join(dataDir, 'audit-checkpoints.jsonl')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dataDir, 'keys', 'audit.key')).mode & 0o777).toBe(0o600);

    // Tamper with one row directly in the embedded database (as a superuser could).
    const db = await openDb({ embeddedDir: path.join(dataDir, 'pgdata') });
    let id: number;
    let outcome: string;
    try {
      await db.raw('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change');
      ({ id, outcome } = await db('audit_events').select('id', 'outcome').orderBy('id').first());
      await db('audit_events').where({ id }).update({ outcome: 'failure' });
    } finally {
      await db.destroy();
    }
    let out = '';
    let status = 0;
    try {
      execFileSync(process.execPath, [cli, 'audit', 'verify'], { env, encoding: 'utf8' });
    } catch (e: any) {
      out = String(e.stdout);
      status = e.status;
    }
    expect(status).toBe(1);
    expect(out).toContain(`BROKEN (row-hash-mismatch) at event id ${id}`);

    // Delete the newest row (put the first back): the checkpoint names the truncation.
    const db2 = await openDb({ embeddedDir: path.join(dataDir, 'pgdata') });
    let last: number;
    try {
      await db2('audit_events').where({ id }).update({ outcome });
      ({ id: last } = await db2('audit_events').select('id').orderBy('id', 'desc').first());
      await db2('audit_events').where({ id: last }).delete();
      await db2.raw('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_change');
    } finally {
      await db2.destroy();
    }
    try {
      execFileSync(process.execPath, [cli, 'audit', 'verify'], { env, encoding: 'utf8' });
      status = 0;
    } catch (e: any) {
      out = String(e.stdout);
      status = e.status;
    }
    expect(status).toBe(1);
    expect(out).toContain(`BROKEN (truncated) at event id ${last}`);
  });
});

// Issue 14, items 5, 7 and 8: insecure configurations refuse to start (expired
// certificate, RSA below 2048 bits, a private key readable by others), a certificate
// about to expire is a warning, the data directory is private (0600/0700) throughout,
// and <data>/tmp is emptied at start. The check functions directly (with real keys and
// certificates from openssl), then the real `tresor serve` in a child process: refused
// with a readable key file, and started — with the data directory tightened and the
// crash leftovers gone — once it is fixed.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkKeyFileMode, checkTlsMaterial, cleanTempDir, tightenModes } from '../../src/startup-checks.js';

const ROOT = path.resolve(__dirname, '../..');
let dir: string;

/** A self-signed certificate and key made by openssl (`-newkey rsa:1024`, `ec -pkeyopt …`). */
function selfSigned(name: string, newkey: string[], days = 30): { cert: string; key: string; certPath: string; keyPath: string } {
  const keyPath = path.join(dir, `${name}.key`);
  const certPath = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', ...newkey, '-nodes', '-keyout', keyPath, '-out', certPath, '-days', String(days), '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  fs.chmodSync(keyPath, 0o600);
  return { cert: fs.readFileSync(certPath, 'utf8'), key: fs.readFileSync(keyPath, 'utf8'), certPath, keyPath };
}
const material = (c: { cert: string; key: string }) => ({ serverCertPem: c.cert, serverKeyPem: c.key, caCertPem: c.cert });

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-startup-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('start-up checks (functions)', () => {
  it('refuses an expired certificate and one not yet valid; warns within 30 days; passes otherwise', () => {
    const c = selfSigned('rsa2048', ['-newkey', 'rsa:2048'], 400);
    const to = new Date(new X509Certificate(c.cert).validTo);
    expect(checkTlsMaterial(material(c))).toEqual([]);
    expect(() => checkTlsMaterial(material(c), new Date(to.getTime() + 86_400_000))).toThrow(/expired on .*renew/);
    expect(() => checkTlsMaterial(material(c), new Date(Date.now() - 7 * 86_400_000))).toThrow(/not valid before/);
    const warnings = checkTlsMaterial(material(c), new Date(to.getTime() - 10 * 86_400_000));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/expires in 9|expires in 10/);
  });

  it('refuses RSA below 2048 bits and accepts P-256', () => {
    const weak = selfSigned('rsa1024', ['-newkey', 'rsa:1024']);
    expect(() => checkTlsMaterial(material(weak))).toThrow(/RSA with 1024 bits; at least 2048/);
    const ec = selfSigned('p256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'], 400);
    expect(checkTlsMaterial(material(ec))).toEqual([]);
  });

  it('refuses a key file readable or writable by group or others', async () => {
    const c = selfSigned('mode', ['-newkey', 'rsa:2048']);
    await expect(checkKeyFileMode(c.keyPath)).resolves.toBeUndefined();
    for (const mode of [0o640, 0o604, 0o620]) {
      fs.chmodSync(c.keyPath, mode);
      await expect(checkKeyFileMode(c.keyPath)).rejects.toThrow(/group or others .*chmod 600/);
    }
  });

  it('removes group/other bits throughout the data directory, but does not walk the blob store', async () => {
    const data = path.join(dir, 'data-modes');
    fs.mkdirSync(path.join(data, 'pgdata', 'base'), { recursive: true, mode: 0o755 });
    fs.mkdirSync(path.join(data, 'blobs', 'ab'), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(data, 'pgdata', 'base', 'f1'), 'x', { mode: 0o666 });
    fs.writeFileSync(path.join(data, 'blobs', 'ab', 'blob'), 'x', { mode: 0o644 });
    fs.chmodSync(path.join(data, 'pgdata'), 0o755);
    fs.chmodSync(path.join(data, 'pgdata', 'base', 'f1'), 0o666);
    const fixed = await tightenModes(data, [path.join(data, 'blobs')]);
    expect(fixed).toBeGreaterThanOrEqual(3);
    expect(fs.statSync(path.join(data, 'pgdata')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(data, 'pgdata', 'base', 'f1')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(data, 'blobs')).mode & 0o077).toBe(0);
    expect(await tightenModes(data, [path.join(data, 'blobs')])).toBe(0);
  });

  it('empties the temporary directory', async () => {
    const tmp = path.join(dir, 'data-tmp', 'tmp');
    fs.mkdirSync(path.join(tmp, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'ingest-1234.dcm'), Buffer.alloc(1024));
    fs.writeFileSync(path.join(tmp, 'sub', 'x'), 'x');
    expect(await cleanTempDir(tmp)).toBe(2);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Runs `tresor serve` until it listens (then stops it) or exits; the output and exit code. */
async function serve(env: Record<string, string>, timeoutMs = 150_000): Promise<{ code: number | null; listening: boolean; log: string }> {
  const full: NodeJS.ProcessEnv = { ...process.env, TRESOR_HTTP_PORT: String(await freePort()), TRESOR_DIMSE_PORT: String(await freePort()), ...env };
  delete full.DATABASE_URL;
  delete full.TRESOR_ADMIN_PASSWORD;
  const child = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['src/cli.ts', 'serve'], { cwd: ROOT, env: full, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  child.stdout!.on('data', (c) => (log += c));
  child.stderr!.on('data', (c) => (log += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + timeoutMs;
  while (!log.includes('tresor is listening') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const listening = log.includes('tresor is listening');
  if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
  return { code: await exited, listening, log };
}

describe('tresor serve with insecure files', () => {
  it('refuses a server key readable by others, then starts once it is 0600: data directory private, tmp emptied', async () => {
    const data = path.join(dir, 'serve-data');
    const c = selfSigned('serve', ['-newkey', 'rsa:2048'], 400);
    fs.chmodSync(c.keyPath, 0o644);
    const env = { TRESOR_DATA_DIR: data, TRESOR_TLS_CERT: c.certPath, TRESOR_TLS_KEY: c.keyPath };
    const refused = await serve(env);
    expect(refused.listening, refused.log).toBe(false);
    expect(refused.code).not.toBe(0);
    expect(refused.log).toMatch(/accessible to group or others .*chmod 600/);

    fs.chmodSync(c.keyPath, 0o600);
    // What a crash leaves behind.
    fs.mkdirSync(path.join(data, 'tmp'), { recursive: true });
    fs.writeFileSync(path.join(data, 'tmp', 'ingest-crashed.dcm'), Buffer.alloc(4096));
    const started = await serve(env);
    expect(started.listening, started.log).toBe(true);
    expect(fs.readdirSync(path.join(data, 'tmp')).filter((f) => f.startsWith('ingest-'))).toEqual([]);
    const open: string[] = [];
    const walk = (p: string) => {
      const st = fs.lstatSync(p);
      if ((st.mode & 0o077) !== 0) open.push(`${p} ${(st.mode & 0o777).toString(8)}`);
      if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    };
    walk(data);
    expect(open, 'entries accessible to group or others').toEqual([]);
    expect(fs.readdirSync(path.join(data, 'pgdata')).length).toBeGreaterThan(0);
  }, 320_000);
});

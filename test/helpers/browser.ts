// Real-browser tests: Debian's Chromium driven by playwright-core, against `tresor serve`
// run from the build (dist/) in a child process, as `npm start` runs it: HTTPS with the
// console, DIMSE over TLS, a generated CA and the bootstrap admin's password file.
//
// The browser trusts exactly the server's key (--ignore-certificate-errors-spki-list with
// its SPKI hash) rather than ignoring every TLS error; each test user gets a fresh
// browser context (its own cookies and storage) in one browser with a temporary profile.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { openDb } from '../../src/db/knex.js';
import { freePort } from './dimse-tools.js';

export const CHROMIUM = process.env.TRESOR_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const ROOT = path.resolve(__dirname, '../..');
/** Screenshots and other artifacts of browser tests (gitignored). */
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'browser');
export const artifact = (name: string): string => path.join(ARTIFACTS, name);

/** Fails at once, with what to do, when the browser is not installed (CI installs it: .ci/run). */
export function requireChromium(): void {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's Chromium (as root: apt-get install -y chromium; scripts/test-prereqs.sh does it).`);
  }
}

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo: what Chromium's SPKI allow-list takes. */
export function spkiHash(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/**
 * Headless Chromium, no GPU, no network beyond what the page asks for, a fresh profile per
 * launch. `trustCertificates`: server certificates (PEM) it accepts although their CA is
 * not in its store — only those keys (--ignore-certificate-errors-spki-list, which needs
 * the fresh --user-data-dir Playwright gives), every other certificate error still fails.
 * WebGL runs on SwiftShader (software): OHIF's viewports need WebGL.
 */
export async function launchBrowser(opts: { trustCertificates?: string[] } = {}): Promise<Browser> {
  return launchTrusting((opts.trustCertificates ?? []).map(spkiHash));
}

/** Chromium trusting exactly these keys, given as their SPKI hashes. */
export async function launchChromium(...trustSpki: string[]): Promise<Browser> {
  return launchTrusting(trustSpki);
}

async function launchTrusting(pins: string[]): Promise<Browser> {
  requireChromium();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
      ...(pins.length > 0 ? [`--ignore-certificate-errors-spki-list=${pins.join(',')}`] : []),
    ],
  });
}

export interface ServeProcess {
  url: string;
  httpPort: number;
  dimsePort: number;
  dataDir: string;
  /** <data>/tls/ca.crt: what devices and clients trust. */
  caPem: string;
  serverCertPem: string;
  /** <data>/tls/server-ec.crt: the ECDSA certificate served beside the RSA one (TLS 1.3 clients such as Chromium get it). */
  serverEcCertPem: string;
  initialAdminPassword: string;
  /** Everything the server wrote to stdout and stderr so far. */
  log(): string;
  stop(): Promise<void>;
}

/** A PostgreSQL database of its own when TEST_DATABASE_URL is set (as in CI), else the embedded default. */
async function databaseFor(): Promise<{ url?: string; drop(): Promise<void> }> {
  const admin = process.env.TEST_DATABASE_URL;
  if (!admin) return { drop: async () => undefined };
  const name = `tresor_browser_${randomBytes(6).toString('hex')}`;
  const db = await openDb({ url: admin });
  try {
    await db.raw('CREATE DATABASE ??', [name]);
  } finally {
    await db.destroy();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const d = await openDb({ url: admin });
      try {
        await d.raw('DROP DATABASE IF EXISTS ?? WITH (FORCE)', [name]);
      } finally {
        await d.destroy();
      }
    },
  };
}

/** Starts `node dist/src/cli.js serve` (build first: `npm run build`) and waits for its 'listening' line. */
export async function startServe(env: Record<string, string> = {}): Promise<ServeProcess> {
  for (const f of ['dist/src/cli.js', 'dist/web/index.html']) {
    if (!fs.existsSync(path.join(ROOT, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-browser-'));
  const httpPort = await freePort();
  const dimsePort = await freePort();
  const database = await databaseFor();
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    TRESOR_DATA_DIR: dataDir,
    TRESOR_HOST: '127.0.0.1',
    TRESOR_HTTP_PORT: String(httpPort),
    TRESOR_DIMSE_PORT: String(dimsePort),
    ...env,
  };
  delete childEnv.TRESOR_ADMIN_PASSWORD;
  delete childEnv.DATABASE_URL;
  if (database.url) childEnv.DATABASE_URL = database.url;
  const child: ChildProcess = spawn(process.execPath, ['dist/src/cli.js', 'serve'], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (c) => (log += c));
  child.stderr!.on('data', (c) => (log += c));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await database.drop().catch(() => undefined);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 120_000;
    while (!log.includes('tresor is listening')) {
      if (child.exitCode !== null) throw new Error(`tresor exited early:\n${log}`);
      if (Date.now() > deadline) throw new Error(`tresor did not start within 2 minutes:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const read = (f: string) => fs.readFileSync(path.join(dataDir, f), 'utf8');
    return {
      url: `https://127.0.0.1:${httpPort}`,
      httpPort,
      dimsePort,
      dataDir,
      caPem: read('tls/ca.crt'),
      serverCertPem: read('tls/server.crt'),
      serverEcCertPem: read('tls/server-ec.crt'),
      initialAdminPassword: read('initial-admin-password').trim(),
      log: () => log,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

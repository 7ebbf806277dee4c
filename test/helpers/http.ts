// A real Tresor HTTPS server for tests: identity, audit and tokens on a real database,
// the generated local PKI, listening on 127.0.0.1 port 0, with a node:https client that
// trusts only the generated CA. Logs are captured line by line (for the secret scan).

import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { createAuditLog, type AuditLog } from '../../src/core/audit.js';
import { createIdentity, type Identity } from '../../src/core/identity/index.js';
import type { LockoutPolicy } from '../../src/core/identity/lockout.js';
import { openTokenService } from '../../src/core/identity/tokens.js';
import { pkiCertificateIssuer } from '../../src/pki/certificate-issuer.js';
import { fsTokenKeyStore } from '../../src/pki/token-key-store.js';
import { createAuditRepo } from '../../src/db/audit.repo.js';
import { createIdentityRepo } from '../../src/db/identity.repo.js';
import type { Db } from '../../src/db/knex.js';
import { createLockoutRepo } from '../../src/db/lockout.repo.js';
import { buildApp } from '../../src/http/app.js';
import { httpsOptions } from '../../src/http/tls.js';
import { createLogger } from '../../src/log.js';
import { ensureLocalPki, type Pki } from '../../src/pki/ca.js';

export const TEST_ISSUER = 'https://tresor.test';
export const TEST_AUDIENCE = 'tresor-api';

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** Parsed JSON, or undefined. */
  body: any;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Sent as is (for malformed JSON). */
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface TestServer {
  url: string;
  ca: string;
  app: FastifyInstance;
  identity: Identity;
  audit: AuditLog;
  db: Db;
  dataDir: string;
  /** Every log line written so far (JSON strings). */
  logs: string[];
  request(method: string, urlPath: string, opts?: RequestOptions): Promise<HttpResponse>;
  /** Logs in and returns the access token; fails the test on anything but 200. */
  login(username: string, password: string): Promise<string>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  db: Db;
  pki: Pki;
  /** Holds keys/ and initial-admin-password; reuse it to "restart" the same installation. */
  dataDir: string;
  /** Bootstraps `admin` with this password (no change required); absent: no bootstrap. */
  adminPassword?: string;
  lockoutPolicy?: Partial<LockoutPolicy>;
  authRateLimit?: { max: number; timeWindowMs: number };
  tokenTtlSeconds?: number;
  corsOrigins?: string[];
  dicomweb?: FastifyPluginAsync;
  logs?: string[];
  now?: () => Date;
}

/** Makes (once per directory) the local CA and server certificate. */
export async function testPki(dir: string): Promise<Pki> {
  return ensureLocalPki({ tlsDir: path.join(dir, 'tls') });
}

export async function tempDir(prefix = 'tresor-http-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function startTestServer(opts: TestServerOptions): Promise<TestServer> {
  const logs = opts.logs ?? [];
  const logger = createLogger('trace', { write: (line: string) => void logs.push(line) });
  const audit = createAuditLog(createAuditRepo(opts.db));
  const tokens = await openTokenService({
    keys: fsTokenKeyStore(path.join(opts.dataDir, 'keys')),
    settings: { issuer: TEST_ISSUER, audience: TEST_AUDIENCE, ttlSeconds: opts.tokenTtlSeconds ?? 600 },
    now: opts.now,
  });
  const identity = createIdentity({
    repo: createIdentityRepo(opts.db),
    lockouts: createLockoutRepo(opts.db),
    audit,
    tokens,
    certificates: opts.pki && pkiCertificateIssuer(opts.pki),
    dataDir: opts.dataDir,
    lockoutPolicy: opts.lockoutPolicy,
    now: opts.now,
  });
  if (opts.adminPassword !== undefined) await identity.bootstrapAdmin({ adminPassword: opts.adminPassword });
  const app = await buildApp(
    {
      config: { corsOrigins: opts.corsOrigins ?? [] },
      logger,
      identity,
      audit,
      health: async () => void (await opts.db.raw('select 1')),
      dicomweb: opts.dicomweb,
    },
    { https: httpsOptions(opts.pki), authRateLimit: opts.authRateLimit ?? { max: 10_000, timeWindowMs: 60_000 } },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;
  const ca = opts.pki.caCertPem;

  const request = (method: string, urlPath: string, ro: RequestOptions = {}) => httpsRequest(url, ca, method, urlPath, ro);
  return {
    url,
    ca,
    app,
    identity,
    audit,
    db: opts.db,
    dataDir: opts.dataDir,
    logs,
    request,
    async login(username, password) {
      const r = await request('POST', '/auth/token', { body: { username, password } });
      if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text}`);
      return r.body.access_token as string;
    },
    close: () => app.close(),
  };
}

/** One HTTPS request over a fresh socket, trusting only `ca`. */
export function httpsRequest(base: string, ca: string, method: string, urlPath: string, ro: RequestOptions = {}, tls: https.RequestOptions = {}): Promise<HttpResponse> {
  const headers: Record<string, string> = { accept: 'application/json', ...ro.headers };
  let payload: string | undefined;
  if (ro.rawBody !== undefined) payload = ro.rawBody;
  else if (ro.body !== undefined) payload = JSON.stringify(ro.body);
  if (payload !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  if (ro.token) headers.authorization = `Bearer ${ro.token}`;
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(urlPath, base), { method, headers, ca, agent: false, ...tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: any;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

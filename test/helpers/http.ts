// A real Tresor HTTPS server for tests: createDeps (deps.ts) on the test's database and
// the shared test PKI, buildApp (http/app.ts) as main.ts builds it, DICOMweb included,
// listening on 127.0.0.1 port 0, with a node:https client that trusts only the CA.
// Tokens come from the real login path (POST /auth/token). Logs are captured line by
// line (for the secret scan).

import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../src/config.js';
import type { AuditLog } from '../../src/core/audit.js';
import type { Identity } from '../../src/core/identity/index.js';
import type { LockoutPolicy } from '../../src/core/identity/lockout.js';
import { createDeps, type Deps, type DepsOverrides } from '../../src/deps.js';
import type { Db } from '../../src/db/knex.js';
import { buildApp } from '../../src/http/app.js';
import { httpsOptions } from '../../src/http/tls.js';
import { createLogger } from '../../src/log.js';
import type { Pki } from '../../src/pki/ca.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { testConfig, type TestConfigChanges } from './config.js';

export { testPki } from './pki.js';

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
  /** Everything createDeps built for this server. */
  deps: Deps;
  identity: Identity;
  audit: AuditLog;
  db: Db;
  dataDir: string;
  /** Every log line written so far (JSON strings). */
  logs: string[];
  request(method: string, urlPath: string, opts?: RequestOptions): Promise<HttpResponse>;
  /** Logs in and returns the access token; fails the test on anything but 200. */
  login(username: string, password: string): Promise<string>;
  /** Closes the server and what createDeps opened (not the injected db and blob store). */
  close(): Promise<void>;
}

export interface TestServerOptions {
  db: Db;
  /** Absent: the PKI the configuration names (config.tls), as `tresor serve` builds it. */
  pki?: Pki;
  /** Holds keys/, blobs/, tmp/ and initial-admin-password; reuse it to "restart" the same installation. */
  dataDir: string;
  /** Bootstraps `admin` with this password (no change required); absent: no bootstrap. */
  adminPassword?: string;
  lockoutPolicy?: Partial<LockoutPolicy>;
  authRateLimit?: { max: number; timeWindowMs: number };
  tokenTtlSeconds?: number;
  corsOrigins?: string[];
  publicUrl?: string;
  limits?: Partial<Config['limits']>;
  stowIdleTimeoutMs?: number;
  /** A blob store to use instead of <dataDir>/blobs (closed by the caller). */
  blobs?: BlobStore;
  services?: DepsOverrides['services'];
  logs?: string[];
  now?: () => Date;
  /** The built console to serve (default: dist/web beside the code). */
  webRoot?: string;
  /** Further settings (e.g. host and dimsePort for a test that also starts the DIMSE server). */
  config?: TestConfigChanges;
}

export async function tempDir(prefix = 'tresor-http-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function startTestServer(opts: TestServerOptions): Promise<TestServer> {
  const logs = opts.logs ?? [];
  const logger = createLogger('trace', { write: (line: string) => void logs.push(line) });
  const config = testConfig(opts.dataDir, {
    corsOrigins: opts.corsOrigins ?? [],
    tokenTtlSeconds: opts.tokenTtlSeconds ?? 600,
    publicUrl: opts.publicUrl,
    limits: opts.limits,
    ...opts.config,
  });
  const deps = await createDeps(config, logger, {
    db: opts.db,
    pki: opts.pki,
    blobs: opts.blobs,
    now: opts.now,
    lockoutPolicy: opts.lockoutPolicy,
    tuning: { stowIdleTimeoutMs: opts.stowIdleTimeoutMs },
    services: opts.services,
  });
  let app: FastifyInstance | undefined;
  try {
    if (opts.adminPassword !== undefined) await deps.identity.bootstrapAdmin({ adminPassword: opts.adminPassword });
    app = await buildApp(deps, { https: httpsOptions(deps.pki), webRoot: opts.webRoot, authRateLimit: opts.authRateLimit ?? { max: 10_000, timeWindowMs: 60_000 } });
    await app.listen({ host: '127.0.0.1', port: 0 });
  } catch (e) {
    await app?.close().catch(() => undefined);
    await deps.close();
    throw e;
  }
  const port = (app.server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;
  const ca = deps.pki.caCertPem;
  const server = app;

  const request = (method: string, urlPath: string, ro: RequestOptions = {}) => httpsRequest(url, ca, method, urlPath, ro);
  return {
    url,
    ca,
    app: server,
    deps,
    identity: deps.identity,
    audit: deps.audit,
    db: deps.db,
    dataDir: opts.dataDir,
    logs,
    request,
    async login(username, password) {
      const r = await request('POST', '/auth/token', { body: { username, password } });
      if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text}`);
      return r.body.access_token as string;
    },
    async close() {
      await server.close();
      await deps.close();
    },
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

// The server of the storage fault tests (test/storage/{s3,pg}-faults.test.ts): Tresor's
// HTTP and DIMSE doors on loopback over one Deps, a department admin with a token, and a
// writer device with its TLS certificate on disk; plus the plain HTTP client and the
// polling wait both tests use. The faults themselves (S3 paused or its bucket deleted,
// PostgreSQL stopped) are each test's own.

import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Principal } from '../../src/core/principal.js';
import type { Db } from '../../src/db/knex.js';
import { createDeps, dimseServerDeps, type Deps } from '../../src/deps.js';
import { startDimseServer, type DimseServer } from '../../src/dimse/server.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/log.js';
import { testConfig, type TestConfigChanges } from './config.js';
import { testPki } from './pki.js';

export const SYSTEM: Principal = { kind: 'system', id: 0, name: 'test', globalAdmin: true, roles: [] };
export const PASSWORD = 'correct horse battery 9';

export interface FaultServer {
  deps: Deps;
  app: FastifyInstance;
  dimse: DimseServer;
  /** http://127.0.0.1:PORT of the DICOMweb door (plain HTTP: TLS is not what these tests are about). */
  base: string;
  /** The bearer token of `tech`, admin of department radiology. */
  token: string;
  /** Tresor's CA certificate, for storescu's --add-cert-file. */
  caPath: string;
  /** Device CT01 (writer in radiology): its key and certificate files. */
  ct: { keyPath: string; certPath: string };
  close(): Promise<void>;
}

export async function startFaultServer(dir: string, db: Db, changes: TestConfigChanges): Promise<FaultServer> {
  const config = testConfig(dir, { host: '127.0.0.1', dimsePort: 0, httpPort: 0, ...changes });
  const deps = await createDeps(config, createLogger('silent'), { db, pki: await testPki() });
  const app = await buildApp(deps, { https: null, authRateLimit: { max: 10_000, timeWindowMs: 60_000 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const dimse = await startDimseServer(dimseServerDeps(deps));
  const caPath = path.join(dir, 'ca.crt');
  await fs.writeFile(caPath, deps.pki.caCertPem);

  await deps.identity.admin.createDepartment(SYSTEM, { name: 'radiology' });
  await deps.identity.admin.createUser(SYSTEM, { username: 'tech', password: PASSWORD, roles: [{ department: 'radiology', role: 'admin' }], globalAdmin: false });
  const login = await request(base, 'POST', '/auth/token', { headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ username: 'tech', password: PASSWORD })) });
  if (login.status !== 200) throw new Error(`login failed: ${login.status} ${login.body.toString()}`);
  const token = JSON.parse(login.body.toString()).access_token as string;

  await deps.identity.admin.createDevice(SYSTEM, { aeTitle: 'CT01', roles: [{ department: 'radiology', role: 'writer' }], host: null, port: null });
  const issued = await deps.identity.admin.issueDeviceCertificate(SYSTEM, 'CT01', {});
  const ct = { keyPath: path.join(dir, 'CT01.key'), certPath: path.join(dir, 'CT01.crt') };
  await fs.writeFile(ct.keyPath, issued.privateKey!, { mode: 0o600 });
  await fs.writeFile(ct.certPath, issued.certificate);

  return {
    deps,
    app,
    dimse,
    base,
    token,
    caPath,
    ct,
    async close() {
      await Promise.allSettled([dimse.close(), app.close()]);
      await deps.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** From sending the request to the end of the answer. */
  ms: number;
}

/** No client may wait longer than this for an answer (the point is "an answer", not speed). */
export const CLIENT_TIMEOUT_MS = 90_000;

export function request(base: string, method: string, urlPath: string, o: { token?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Reply> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request(base + urlPath, { method, headers: { ...o.headers, ...(o.token ? { authorization: `Bearer ${o.token}` } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: Date.now() - t0 }));
      res.on('error', reject);
    });
    req.setTimeout(CLIENT_TIMEOUT_MS, () => req.destroy(new Error('no answer in time')));
    req.on('error', reject);
    req.end(o.body);
  });
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

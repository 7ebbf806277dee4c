// Several Tresor nodes in one test (issue 11 item 2): each is what main.ts starts —
// createDeps on its own data directory with the shared DATABASE_URL and
// TRESOR_MASTER_KEY_FILE (no injected database or PKI: the shared ones are the point),
// buildApp over HTTPS and the DIMSE server — listening on 127.0.0.1, free ports.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createDeps, dimseServerDeps, type Deps } from '../../src/deps.js';
import { startDimseServer, type DimseServer } from '../../src/dimse/server.js';
import { openDb } from '../../src/db/knex.js';
import { buildApp } from '../../src/http/app.js';
import { httpsOptions } from '../../src/http/tls.js';
import { createLogger } from '../../src/log.js';
import type { LockoutPolicy } from '../../src/core/identity/lockout.js';
import { testConfig } from './config.js';
import { FAST_TUNING } from './dimse-env.js';
import { httpsRequest, type HttpResponse, type RequestOptions } from './http.js';

export interface TestNode {
  name: string;
  deps: Deps;
  dataDir: string;
  url: string;
  dimsePort: number;
  dimse: DimseServer;
  logs: string[];
  request(method: string, urlPath: string, opts?: RequestOptions): Promise<HttpResponse>;
  close(): Promise<void>;
}

/** A fresh, empty PostgreSQL database from TEST_DATABASE_URL (dropped by drop()). */
export async function emptyPostgres(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `tresor_nodes_${randomBytes(6).toString('hex')}`;
  const admin = await openDb({ url: adminUrl });
  await admin.raw('CREATE DATABASE ??', [name]);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      try {
        await admin.raw('DROP DATABASE IF EXISTS ?? WITH (FORCE)', [name]);
      } finally {
        await admin.destroy();
      }
    },
  };
}

export async function startNode(o: {
  name: string;
  databaseUrl: string;
  masterKeyFile: string;
  adminPassword?: string;
  lockoutPolicy?: Partial<LockoutPolicy>;
  keyRefreshMs?: number;
}): Promise<TestNode> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `tresor-${o.name}-`));
  const logs: string[] = [];
  const logger = createLogger('debug', { write: (line: string) => void logs.push(line) });
  const config = testConfig(dataDir, { databaseUrl: o.databaseUrl, masterKeyFile: o.masterKeyFile, host: '127.0.0.1', dimsePort: 0, httpPort: 0, aeTitle: 'TRESOR' });
  const deps = await createDeps(config, logger, { lockoutPolicy: o.lockoutPolicy, tuning: { dimse: FAST_TUNING, keyRefreshMs: o.keyRefreshMs } });
  let app: FastifyInstance | undefined;
  let dimse: DimseServer | undefined;
  try {
    if (o.adminPassword) await deps.identity.bootstrapAdmin({ adminPassword: o.adminPassword });
    app = await buildApp(deps, { https: httpsOptions(deps.pki), authRateLimit: { max: 10_000, timeWindowMs: 60_000 } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    dimse = await startDimseServer(dimseServerDeps(deps));
  } catch (e) {
    await app?.close().catch(() => undefined);
    await deps.close();
    throw e;
  }
  const server = app;
  const d = dimse;
  const httpServer = app.server as unknown as { setSecureContext(o: object): void };
  // As main.ts does: a certificate renewed by another node is served from the next refresh on.
  deps.onPkiChange(() => {
    httpServer.setSecureContext(httpsOptions(deps.pki));
    d.reloadCertificate();
  });
  const url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    name: o.name,
    deps,
    dataDir,
    url,
    dimsePort: d.port,
    dimse: d,
    logs,
    request: (method, urlPath, ro = {}) => httpsRequest(url, deps.pki.caCertPem, method, urlPath, ro),
    async close() {
      await d.close();
      await server.close();
      await deps.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

// The audit-count tests' server: built as src/main.ts builds it (createDeps → buildApp
// with the DICOMweb plugin → startDimseServer), with a short C-FIND page so that a
// small result set spans several pages. Local to these tests (test/helpers is being
// rewritten over createDeps at the same time).

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.js';
import type { AuditRow } from '../../src/core/audit.js';
import type { Principal, Role } from '../../src/core/principal.js';
import { createDeps, type Deps } from '../../src/deps.js';
import { buildApp } from '../../src/http/app.js';
import { dicomwebRoutes } from '../../src/http/dicomweb/routes.js';
import { dimseAuthenticatorFrom } from '../../src/dimse/identity-adapter.js';
import { startDimseServer, type DimseServer } from '../../src/dimse/server.js';
import { createLogger } from '../../src/log.js';

export const SYSTEM: Principal = { kind: 'system', id: 0, name: 'test', globalAdmin: true, roles: [] };

export interface AuditServer {
  deps: Deps;
  http: FastifyInstance;
  dimse: DimseServer;
  dir: string;
  caPath: string;
  department(name: string): Promise<void>;
  device(aeTitle: string, roles: [string, Role][], dest?: { host: string; port: number }): Promise<{ keyPath: string; certPath: string }>;
  user(username: string, password: string, roles: [string, Role][], globalAdmin?: boolean): Promise<void>;
  /** Rows written since `mark()` (oldest first). */
  mark(): Promise<() => Promise<AuditRow[]>>;
  close(): Promise<void>;
}

export async function startAuditServer(): Promise<AuditServer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-audit-'));
  const config = loadConfig({}, { TRESOR_DATA_DIR: dir, TRESOR_HOST: '127.0.0.1', TRESOR_DIMSE_PORT: '0', TRESOR_HTTP_PORT: '0' });
  const logger = createLogger('silent');
  const deps = await createDeps(config, logger);
  const http = await buildApp(
    {
      config,
      logger,
      identity: deps.identity,
      audit: deps.audit,
      dicomweb: (app) =>
        dicomwebRoutes(app, {
          ingest: deps.ingest,
          query: deps.query,
          retrieve: deps.retrieve,
          deletion: deps.deletion,
          config: { publicUrl: config.publicUrl, limits: config.limits },
          departmentByName: deps.departmentByName,
        }),
    },
    { https: null, authRateLimit: { max: 10_000, timeWindowMs: 60_000 } },
  );
  await http.ready();
  const dimse = await startDimseServer({
    config,
    pki: deps.pki,
    authenticator: dimseAuthenticatorFrom(deps.identity),
    ingest: deps.ingest,
    query: deps.query,
    retrieve: deps.retrieve,
    audit: deps.audit,
    logger,
    tuning: { findPageSize: 2 },
  });
  const caPath = path.join(dir, 'ca-for-tests.crt');
  await fs.writeFile(caPath, deps.pki.caCertPem);
  const departments = new Set<string>();
  const roleInputs = async (roles: [string, Role][]) => {
    for (const [d] of roles) await server.department(d);
    return roles.map(([department, role]) => ({ department, role }));
  };
  const server: AuditServer = {
    deps,
    http,
    dimse,
    dir,
    caPath,
    async department(name) {
      if (departments.has(name)) return;
      departments.add(name);
      await deps.identity.admin.createDepartment(SYSTEM, { name });
    },
    async device(aeTitle, roles, dest) {
      await deps.identity.admin.createDevice(SYSTEM, { aeTitle, roles: await roleInputs(roles), host: dest?.host ?? null, port: dest?.port ?? null });
      const issued = await deps.identity.admin.issueDeviceCertificate(SYSTEM, aeTitle, {});
      const base = path.join(dir, aeTitle);
      await fs.writeFile(`${base}.key`, issued.privateKey!, { mode: 0o600 });
      await fs.writeFile(`${base}.crt`, issued.certificate);
      return { keyPath: `${base}.key`, certPath: `${base}.crt` };
    },
    async user(username, password, roles, globalAdmin = false) {
      await deps.identity.admin.createUser(SYSTEM, { username, password, roles: await roleInputs(roles), globalAdmin });
    },
    async mark() {
      const [last] = await deps.audit.list({ limit: 1 });
      const after = last?.id ?? 0;
      return async () => (await deps.audit.list({ limit: 1000 })).filter((r) => r.id > after).sort((a, b) => a.id - b.id);
    },
    async close() {
      await Promise.allSettled([dimse.close(), http.close()]);
      await deps.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}

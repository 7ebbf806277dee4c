// Both front doors on one Deps, as src/main.ts builds them (createDeps → buildApp →
// startDimseServer(dimseServerDeps)), with a short C-FIND page so that a small result
// set spans several pages: the audit-count tests count the rows both doors write.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AuditRow } from '../../src/core/audit.js';
import type { Principal, Role } from '../../src/core/principal.js';
import { createDeps, dimseServerDeps, type Deps } from '../../src/deps.js';
import { buildApp } from '../../src/http/app.js';
import { startDimseServer, type DimseServer } from '../../src/dimse/server.js';
import { createLogger } from '../../src/log.js';
import { testConfig } from './config.js';
import { testPki } from './pki.js';

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
  const config = testConfig(dir, { host: '127.0.0.1', dimsePort: 0, httpPort: 0 });
  const logger = createLogger('silent');
  const deps = await createDeps(config, logger, { pki: await testPki(), tuning: { dimse: { findPageSize: 2 } } });
  const http = await buildApp(deps, { https: null, authRateLimit: { max: 10_000, timeWindowMs: 60_000 } });
  await http.ready();
  const dimse = await startDimseServer(dimseServerDeps(deps));
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

// A real Tresor DIMSE front door for tests: createDeps (deps.ts) on a test database
// (PostgreSQL when TEST_DATABASE_URL is set, else PGlite), filesystem blobs and the
// shared test PKI, and the DIMSE server started from Deps as main.ts starts it, on an
// ephemeral port of 127.0.0.1. Devices get certificates through the identity admin
// service (what POST /admin/devices/{ae}/certificate does) and their key/certificate
// are written to files for the dcmtk tools.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { AuditLog } from '../../src/core/audit.js';
import type { Identity } from '../../src/core/identity/index.js';
import type { IngestService } from '../../src/core/ingest.js';
import { systemPrincipal, type Role } from '../../src/core/principal.js';
import type { QueryService } from '../../src/core/query.js';
import type { RetrieveService } from '../../src/core/retrieve.js';
import { createDeps, dimseServerDeps, type CoreServices, type Deps, type DepsOverrides } from '../../src/deps.js';
import type { Db } from '../../src/db/knex.js';
import { createLogger } from '../../src/log.js';
import type { Pki } from '../../src/pki/ca.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { startDimseServer, type DimseServer, type DimseTuning } from '../../src/dimse/server.js';
import type { DimseDeps } from '../../src/dimse/services.js';
import { testConfig } from './config.js';
import type { Config } from '../../src/config.js';
import { databasesUnderTest } from './db.js';
import { opensslCertificate, sharedTestPki } from './pki.js';

export const AE = 'TRESOR';

/** Short timeouts so that robustness tests finish quickly. */
export const FAST_TUNING: Partial<DimseTuning> = {
  handshakeTimeoutMs: 3_000,
  artimMs: 3_000,
  idleMs: 4_000,
  pduMs: 3_000,
  writeStallMs: 3_000,
  rejectDelayMs: 300,
  subOpTimeoutMs: 20_000,
  moveConnectTimeoutMs: 5_000,
};

export interface DeviceCreds {
  aeTitle: string;
  keyPath: string;
  certPath: string;
  fingerprint256: string;
}

export interface DimseEnv {
  dir: string;
  /** Everything createDeps built for this server. */
  deps: Deps;
  db: Db;
  pki: Pki;
  caPath: string;
  identity: Identity;
  audit: AuditLog;
  ingest: IngestService;
  query: QueryService;
  retrieve: RetrieveService;
  blobs: BlobStore;
  server: DimseServer;
  port: number;
  /** Every log line the server wrote (JSON), to check that no patient data is logged. */
  logs: string[];
  departments: Map<string, number>;
  department(name: string): Promise<number>;
  device(aeTitle: string, roles: [string, Role][], opts?: { host?: string; port?: number; passcode?: string; certificate?: boolean }): Promise<DeviceCreds>;
  user(username: string, password: string, roles: [string, Role][], globalAdmin?: boolean): Promise<void>;
  /**
   * A TLS server certificate from Tresor's CA for a C-MOVE destination's storage SCP
   * (device certificates are clientAuth only): CN = the AE title, serverAuth + clientAuth.
   */
  serverCertificate(aeTitle: string): Promise<{ keyPath: string; certPath: string }>;
  close(): Promise<void>;
}

export interface EnvOptions {
  tuning?: Partial<DimseTuning>;
  limits?: Partial<DimseDeps['config']['limits']>;
  requireBoth?: boolean;
  /** Wraps the real authenticator (e.g. to count calls). */
  authenticator?: DepsOverrides['dimseAuthenticator'];
  /** Replaces core services (fault injection); env.ingest/query/retrieve stay the real ones. */
  services?: (s: CoreServices) => Partial<CoreServices>;
  /** Decoding limits (TRESOR_DECODE_*). */
  decode?: Partial<Config['decode']>;
}

export async function startDimseEnv(o: EnvOptions = {}): Promise<DimseEnv> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-dimse-'));
  const { pki, caPath } = await sharedTestPki();
  const databases = databasesUnderTest();
  const database = await databases[databases.length - 1].open();
  const logs: string[] = [];
  const logger = createLogger('debug', new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }) as never);
  const base = testConfig(dir, {
    host: '127.0.0.1',
    dimsePort: 0,
    aeTitle: AE,
    dimseRequireBoth: o.requireBoth ?? false,
    limits: {
      maxObjectBytes: 64 * 1024 * 1024,
      maxRequestBytes: 1024 ** 3,
      maxParts: 1000,
      maxAssociations: 300,
      maxAssociationsPerAddress: 300,
      maxPduBytes: 1024 * 1024,
      ...o.limits,
    },
  });
  const config = { ...base, decode: { ...base.decode, ...o.decode } };
  let real: CoreServices | undefined;
  let deps: Deps;
  try {
    deps = await createDeps(config, logger, {
      db: database.db,
      pki,
      tuning: { dimse: { ...FAST_TUNING, ...o.tuning } },
      dimseAuthenticator: o.authenticator,
      services: (s) => ((real = s), o.services?.(s) ?? {}),
    });
  } catch (e) {
    await database.close();
    throw e;
  }
  const { db, identity, audit, blobs } = deps;
  let server: DimseServer;
  try {
    server = await startDimseServer(dimseServerDeps(deps));
  } catch (e) {
    await deps.close();
    await database.close();
    throw e;
  }
  const departments = new Map<string, number>();
  const department = async (name: string): Promise<number> => {
    const known = departments.get(name);
    if (known) return known;
    await identity.admin.createDepartment(systemPrincipal, { name });
    const row = await db('departments').where({ name }).first('id');
    departments.set(name, Number(row.id));
    return Number(row.id);
  };
  const roleInputs = async (roles: [string, Role][]) => {
    for (const [d] of roles) await department(d);
    return roles.map(([department, role]) => ({ department, role }));
  };
  const certDir = path.join(dir, 'certs');
  await fs.mkdir(certDir, { recursive: true });
  return {
    dir,
    deps,
    db,
    pki,
    caPath,
    identity,
    audit,
    ingest: real!.ingest,
    query: real!.query,
    retrieve: real!.retrieve,
    blobs,
    server,
    port: server.port,
    logs,
    departments,
    department,
    async device(aeTitle, roles, opts = {}) {
      await identity.admin.createDevice(systemPrincipal, { aeTitle, roles: await roleInputs(roles), host: opts.host ?? null, port: opts.port ?? null });
      if (opts.passcode) await identity.admin.setDevicePasscode(systemPrincipal, aeTitle, opts.passcode);
      if (opts.certificate === false) return { aeTitle, keyPath: '', certPath: '', fingerprint256: '' };
      const issued = await identity.admin.issueDeviceCertificate(systemPrincipal, aeTitle, {});
      const base = path.join(certDir, aeTitle.replace(/[^A-Za-z0-9_-]/g, '_'));
      await fs.writeFile(`${base}.key`, issued.privateKey!, { mode: 0o600 });
      await fs.writeFile(`${base}.crt`, issued.certificate);
      return { aeTitle, keyPath: `${base}.key`, certPath: `${base}.crt`, fingerprint256: issued.fingerprint256 };
    },
    async user(username, password, roles, globalAdmin = false) {
      await identity.admin.createUser(systemPrincipal, { username, password, roles: await roleInputs(roles), globalAdmin });
    },
    async serverCertificate(aeTitle) {
      return opensslCertificate({
        base: path.join(certDir, `scp-${aeTitle.replace(/[^A-Za-z0-9_-]/g, '_')}`),
        cn: aeTitle,
        extensions: 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
        ca: { certPath: caPath, keyPem: pki.caKeyPem! },
      });
    },
    async close() {
      await server.close();
      await deps.close();
      await database.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Audit rows of one action, oldest first. */
export async function auditOf(env: DimseEnv, action: string) {
  return (await env.audit.list({ action, limit: 1000 })).sort((a, b) => a.id - b.id);
}

// A real Tresor DIMSE front door for tests: PGlite database, filesystem blobs, the
// real identity, ingest, query and retrieve services, Tresor's generated PKI, and
// the DIMSE server on an ephemeral port of 127.0.0.1. Devices get certificates
// through the identity admin service (what POST /admin/devices/{ae}/certificate does)
// and their key/certificate are written to files for the dcmtk tools.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createAuditLog, type AuditLog } from '../../src/core/audit.js';
import { createIdentity, type Identity } from '../../src/core/identity/index.js';
import { openTokenService } from '../../src/core/identity/tokens.js';
import { pkiCertificateIssuer } from '../../src/pki/certificate-issuer.js';
import { fsTokenKeyStore } from '../../src/pki/token-key-store.js';
import { createIngestService, type IngestService } from '../../src/core/ingest.js';
import { systemPrincipal, type Role } from '../../src/core/principal.js';
import { createQueryService, type QueryService } from '../../src/core/query.js';
import { createRetrieveService, type RetrieveService } from '../../src/core/retrieve.js';
import { createAuditRepo } from '../../src/db/audit.repo.js';
import { createIdentityRepo } from '../../src/db/identity.repo.js';
import { createIngestRepo } from '../../src/db/ingest.repo.js';
import { migrate, openDb, type Db } from '../../src/db/knex.js';
import { createLockoutRepo } from '../../src/db/lockout.repo.js';
import { createQueryRepo } from '../../src/db/query.repo.js';
import { createRetrieveRepo } from '../../src/db/retrieve.repo.js';
import { createLogger } from '../../src/log.js';
import { ensureLocalPki, type Pki } from '../../src/pki/ca.js';
import { createFsBlobStore } from '../../src/storage/fs-store.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import type { DimseAuthenticator } from '../../src/dimse/association.js';
import { dimseAuthenticatorFrom } from '../../src/dimse/identity-adapter.js';
import { startDimseServer, type DimseServer, type DimseTuning } from '../../src/dimse/server.js';
import type { DimseDeps } from '../../src/dimse/services.js';
import { run } from './dimse-tools.js';

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
  authenticator?: (real: DimseAuthenticator) => DimseAuthenticator;
  /** Replaces core services (fault injection). */
  services?: (s: Pick<DimseDeps, 'ingest' | 'query' | 'retrieve'>) => Partial<Pick<DimseDeps, 'ingest' | 'query' | 'retrieve'>>;
}

/** One PKI per test run: RSA 3072 generation is slow, and the CA is what devices trust. */
let sharedPki: Promise<{ dir: string; pki: Pki }> | undefined;
function pkiOnce(): Promise<{ dir: string; pki: Pki }> {
  sharedPki ??= (async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-dimse-pki-'));
    return { dir, pki: await ensureLocalPki({ tlsDir: path.join(dir, 'tls'), hostnames: ['localhost'] }) };
  })();
  return sharedPki;
}

export async function startDimseEnv(o: EnvOptions = {}): Promise<DimseEnv> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-dimse-'));
  const { pki, dir: pkiDir } = await pkiOnce();
  const caPath = path.join(pkiDir, 'tls', 'ca.crt');
  const db = await openDb({});
  await migrate(db);
  const logs: string[] = [];
  const logger = createLogger('debug', new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }) as never);
  const audit = createAuditLog(createAuditRepo(db));
  const tokens = await openTokenService({ keys: fsTokenKeyStore(path.join(dir, 'keys')), settings: { issuer: 'tresor', audience: 'tresor', ttlSeconds: 600 } });
  const identity = createIdentity({ repo: createIdentityRepo(db), lockouts: createLockoutRepo(db), audit, tokens, certificates: pkiCertificateIssuer(pki), dataDir: dir });
  const blobs = await createFsBlobStore(path.join(dir, 'blobs'));
  const tmpDir = path.join(dir, 'tmp');
  await fs.mkdir(tmpDir, { recursive: true });
  const maxObjectBytes = o.limits?.maxObjectBytes ?? 64 * 1024 * 1024;
  const real = {
    ingest: createIngestService({ blobs, repo: createIngestRepo(db), audit, tmpDir, maxObjectBytes }),
    query: createQueryService(createQueryRepo(db), { audit }),
    retrieve: createRetrieveService({ repo: createRetrieveRepo(db), blobs, audit }),
  };
  const services = { ...real, ...(o.services?.(real) ?? {}) };
  const realAuth = dimseAuthenticatorFrom(identity);
  const server = await startDimseServer({
    config: {
      host: '127.0.0.1',
      dimsePort: 0,
      aeTitle: AE,
      dataDir: dir,
      dimseRequireBoth: o.requireBoth ?? false,
      limits: {
        maxObjectBytes,
        maxRequestBytes: 1024 ** 3,
        maxParts: 1000,
        maxAssociations: 300,
        maxAssociationsPerAddress: 300,
        maxPduBytes: 1024 * 1024,
        ...o.limits,
      },
    },
    pki,
    authenticator: o.authenticator ? o.authenticator(realAuth) : realAuth,
    ...services,
    audit,
    logger,
    tuning: { ...FAST_TUNING, ...o.tuning },
  });
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
    db,
    pki,
    caPath,
    identity,
    audit,
    ...real,
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
      const base = path.join(certDir, `scp-${aeTitle.replace(/[^A-Za-z0-9_-]/g, '_')}`);
      await fs.writeFile(`${base}.ca.key`, pki.caKeyPem!, { mode: 0o600 });
      await fs.writeFile(`${base}.ext`, 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
      const sh = (args: string[]) => run('openssl', args);
      const steps = [
        ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${aeTitle}`],
        ['x509', '-req', '-in', `${base}.csr`, '-CA', caPath, '-CAkey', `${base}.ca.key`, '-CAcreateserial', '-CAserial', `${base}.srl`, '-days', '2', '-sha256', '-extfile', `${base}.ext`, '-out', `${base}.crt`],
      ];
      for (const a of steps) {
        const r = await sh(a);
        if (r.code !== 0) throw new Error(`openssl ${a[0]} failed: ${r.stderr}`);
      }
      await fs.rm(`${base}.ca.key`);
      return { keyPath: `${base}.key`, certPath: `${base}.crt` };
    },
    async close() {
      await server.close();
      await blobs.close();
      await db.destroy();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Audit rows of one action, oldest first. */
export async function auditOf(env: DimseEnv, action: string) {
  return (await env.audit.list({ action, limit: 1000 })).sort((a, b) => a.id - b.id);
}

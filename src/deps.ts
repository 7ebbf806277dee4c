// Composition root: builds every service once from the Config (plain factories,
// no DI container). main.ts and every end-to-end test helper start from here; tests
// pass DepsOverrides for what they must swap (database, blob store, PKI, clock,
// lockout policy, tuning, fault-injecting services), nothing else is wired twice.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from './config.js';
import { createAuditLog, type AuditLog } from './core/audit.js';
import { createIdentity, type Identity } from './core/identity/index.js';
import type { LockoutPolicy } from './core/identity/lockout.js';
import { openTokenService } from './core/identity/tokens.js';
import { sweepBlobJournal, type SweepResult } from './core/blob-journal.js';
import { createDeletionService, type DeletionService } from './core/delete.js';
import { createIngestService, type IngestRepo, type IngestService } from './core/ingest.js';
import { createQueryService, type QueryService } from './core/query.js';
import { createRetrieveService, type RetrieveService } from './core/retrieve.js';
import { createAuditRepo } from './db/audit.repo.js';
import { createBlobJournalRepo } from './db/blob-journal.repo.js';
import { createBrowserSessionRepo } from './db/browser-session.repo.js';
import { createOverviewRepo } from './db/console.repo.js';
import { createConsoleOverview, type ConsoleOverview } from './core/console-overview.js';
import { packageVersion } from './lib/package-version.js';
import { X509Certificate } from 'node:crypto';
import { createDeleteRepo } from './db/delete.repo.js';
import { createIdentityRepo as identityRepoFor } from './db/identity.repo.js';
import { createIngestRepo } from './db/ingest.repo.js';
import { migrate, openDb, type Db } from './db/knex.js';
import { createLockoutRepo } from './db/lockout.repo.js';
import { createQueryRepo } from './db/query.repo.js';
import { createRetrieveRepo } from './db/retrieve.repo.js';
import type { DimseAuthenticator } from './dimse/association.js';
import { dimseAuthenticatorFrom } from './dimse/identity-adapter.js';
import type { DimseDeps, DimseTuning } from './dimse/services.js';
import type { Logger } from './log.js';
import { ensureLocalPki, loadPki, type Pki } from './pki/ca.js';
import { pkiCertificateIssuer } from './pki/certificate-issuer.js';
import { fsTokenKeyStore } from './pki/token-key-store.js';
import type { BlobStore } from './core/ports/blob-store.js';
import { createBlobStore } from './storage/create-blob-store.js';

/** The `iss` and `aud` of every access token this installation issues. */
export const TOKEN_ISSUER = 'tresor';
export const TOKEN_AUDIENCE = 'tresor';

/** Timeouts that are not operator settings; tests shorten them. */
export interface Tuning {
  dimse?: Partial<DimseTuning>;
  /** STOW-RS: a request that sends no bytes for this long is answered 408 (route default 30 s). */
  stowIdleTimeoutMs?: number;
}

/** The services a test may wrap or replace (fault injection); given the real ones. */
export interface CoreServices {
  ingest: IngestService;
  query: QueryService;
  retrieve: RetrieveService;
  deletion: DeletionService;
}

/**
 * What tests swap. Production passes none, and gets what it always got. An injected
 * `db` or `blobs` belongs to the caller: Deps.close() leaves it open.
 */
export interface DepsOverrides {
  /** An open database (it is migrated here too, which is a no-op when it already is). */
  db?: Db;
  blobs?: BlobStore;
  /** Instead of the configured or generated local PKI (generating RSA keys is slow). */
  pki?: Pki;
  now?: () => Date;
  lockoutPolicy?: Partial<LockoutPolicy>;
  tuning?: Tuning;
  /** Instead of the database-backed ingest repository (failure injection). */
  ingestRepo?: IngestRepo;
  services?: (real: CoreServices) => Partial<CoreServices>;
  /** Wraps the DIMSE authenticator built from identity (e.g. to count calls). */
  dimseAuthenticator?: (real: DimseAuthenticator) => DimseAuthenticator;
}

export interface Deps {
  config: Readonly<Config>;
  logger: Logger;
  db: Db;
  blobs: BlobStore;
  pki: Pki;
  audit: AuditLog;
  identity: Identity;
  ingest: IngestService;
  query: QueryService;
  retrieve: RetrieveService;
  deletion: DeletionService;
  /** The console's system page and edge list (global admins). */
  overview: ConsoleOverview;
  /** Authenticates DIMSE associations (certificate, passcode, user identity) against identity. */
  dimseAuthenticator: DimseAuthenticator;
  tuning: Tuning;
  /** Id of a department by name (STOW-RS `department=`), or null. */
  departmentByName(name: string): Promise<number | null>;
  /** Removes blobs a crash or a failed cleanup left without a row (core/blob-journal.ts). */
  sweepBlobs(): Promise<SweepResult>;
  /** Temporary files (C-STORE spooling, STOW parts); same filesystem as the data. */
  tmpDir: string;
  close(): Promise<void>;
}

export async function createDeps(config: Readonly<Config>, logger: Logger, overrides: DepsOverrides = {}): Promise<Deps> {
  await fs.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const tmpDir = path.join(config.dataDir, 'tmp');
  await fs.mkdir(tmpDir, { recursive: true, mode: 0o700 });

  const pki = overrides.pki ?? (config.tls.cert && config.tls.key
    ? await loadPki({ cert: config.tls.cert, key: config.tls.key, ca: config.tls.ca })
    : await ensureLocalPki({ tlsDir: path.join(config.dataDir, 'tls'), hostnames: [os.hostname(), ...config.tlsHostnames] }));

  const ownDb = !overrides.db;
  const db = overrides.db ?? await openDb({ url: config.databaseUrl, embeddedDir: config.databaseUrl ? undefined : path.join(config.dataDir, 'pgdata') });
  const ownBlobs = !overrides.blobs;
  let blobs: BlobStore | undefined;
  try {
    const applied = await migrate(db);
    if (applied.length) logger.info({ migrations: applied }, 'database migrated');
    blobs = overrides.blobs ?? await createBlobStore(config);
    // A row that cannot be written after a success is reported, never dropped silently (no PHI: action and door only).
    const audit = createAuditLog(createAuditRepo(db), undefined, { onLost: (e, err) => logger.error({ ...e, err: String(err) }, 'audit write failed') });
    const tokens = await openTokenService({
      keys: fsTokenKeyStore(path.join(config.dataDir, 'keys')),
      settings: { issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, ttlSeconds: config.tokenTtlSeconds },
      now: overrides.now,
    });
    const identity = createIdentity({
      repo: identityRepoFor(db),
      lockouts: createLockoutRepo(db),
      audit,
      tokens,
      certificates: pkiCertificateIssuer(pki),
      dataDir: config.dataDir,
      lockoutPolicy: overrides.lockoutPolicy,
      browserSessions: {
        repo: createBrowserSessionRepo(db),
        policy: { idleSeconds: config.session.idleMinutes * 60, maxSeconds: config.session.maxHours * 3600 },
      },
      now: overrides.now,
    });
    const store = blobs;
    const ingest = createIngestService({
      blobs: store,
      repo: overrides.ingestRepo ?? createIngestRepo(db),
      audit,
      tmpDir,
      maxObjectBytes: config.limits.maxObjectBytes,
      onCleanupError: (err, key) => logger.error({ err, key }, 'could not delete an orphaned blob'),
    });
    const query = createQueryService(createQueryRepo(db), { audit });
    const retrieve = createRetrieveService({ repo: createRetrieveRepo(db), blobs: store, audit });
    const deletion = createDeletionService({
      repo: createDeleteRepo(db),
      blobs: store,
      audit,
      onCleanupError: (err, key) => logger.error({ err, key }, 'could not delete the blob of a deleted instance'),
    });
    const real: CoreServices = { ingest, query, retrieve, deletion };
    const services: CoreServices = { ...real, ...overrides.services?.(real) };
    const overview = createConsoleOverview({
      repo: createOverviewRepo(db),
      audit,
      version: packageVersion(),
      probes: { database: async () => void (await db.raw('select 1')), blobStore: () => store.ping() },
      tlsNotAfter: () => ({
        ca: new Date(new X509Certificate(pki.caCertPem).validTo).toISOString(),
        server: new Date(new X509Certificate(pki.serverCertPem).validTo).toISOString(),
      }),
      diskSpace: async () => {
        try {
          const st = await fs.statfs(config.dataDir);
          return { freeBytes: Number(st.bavail) * Number(st.bsize), totalBytes: Number(st.blocks) * Number(st.bsize) };
        } catch {
          return null;
        }
      },
    });
    const realAuthenticator = dimseAuthenticatorFrom(identity);
    const identityRepo = identityRepoFor(db);
    return {
      config,
      logger,
      db,
      blobs: store,
      pki,
      audit,
      identity,
      ...services,
      overview,
      dimseAuthenticator: overrides.dimseAuthenticator?.(realAuthenticator) ?? realAuthenticator,
      tuning: overrides.tuning ?? {},
      async departmentByName(name) {
        return (await identityRepo.findDepartmentByName(name))?.id ?? null;
      },
      sweepBlobs: () =>
        sweepBlobJournal({
          repo: createBlobJournalRepo(db),
          blobs: store,
          onError: (err, key) => logger.error({ err, key }, 'blob sweep: could not delete an orphaned blob'),
        }),
      tmpDir,
      async close() {
        if (ownBlobs) await store.close();
        if (ownDb) await db.destroy();
      },
    };
  } catch (e) {
    if (ownBlobs) await blobs?.close().catch(() => undefined);
    if (ownDb) await db.destroy();
    throw e;
  }
}

/** What the DIMSE server needs, from Deps: main.ts and the tests start it the same way. */
export function dimseServerDeps(deps: Deps): DimseDeps {
  return {
    config: deps.config,
    pki: deps.pki,
    authenticator: deps.dimseAuthenticator,
    ingest: deps.ingest,
    query: deps.query,
    retrieve: deps.retrieve,
    audit: deps.audit,
    logger: deps.logger,
    tuning: deps.tuning.dimse,
  };
}

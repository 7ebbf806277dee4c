// Composition root: builds every service once from the Config (plain factories,
// no DI container). main.ts and every end-to-end test helper start from here; tests
// pass DepsOverrides for what they must swap (database, blob store, PKI, clock,
// lockout policy, tuning, fault-injecting services), nothing else is wired twice.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from './config.js';
import { createAuditLog, type AuditLog } from './core/audit.js';
import { createSharedRefusalThrottle } from './core/audit-throttle.js';
import { createAuditThrottleRepo } from './db/audit-throttle.repo.js';
import { createIdentity, type Identity } from './core/identity/index.js';
import type { LockoutPolicy } from './core/identity/lockout.js';
import { openTokenService } from './core/identity/tokens.js';
import { sweepBlobJournal, type SweepResult } from './core/blob-journal.js';
import { createBackupService, type BackupService } from './core/backup.js';
import { createDeletionService, type DeletionService } from './core/delete.js';
import { createIngestService, type IngestRepo, type IngestService } from './core/ingest.js';
import { createQueryService, type QueryService } from './core/query.js';
import { createRetrieveService, type RetrieveService } from './core/retrieve.js';
import { createPixelCodec, type PixelCodec } from './core/dicom/pixels/pixel-codec.js';
import { createAuditRepo } from './db/audit.repo.js';
import { withSnapshot } from './db/backup.repo.js';
import { createBlobJournalRepo } from './db/blob-journal.repo.js';
import { createBrowserSessionRepo } from './db/browser-session.repo.js';
import { createOverviewRepo } from './db/console.repo.js';
import { createConsoleOverview, type ConsoleOverview } from './core/console-overview.js';
import { packageVersion } from './lib/package-version.js';
import { X509Certificate } from 'node:crypto';
import { createDeleteRepo } from './db/delete.repo.js';
import { createIdentityRepo as identityRepoFor } from './db/identity.repo.js';
import { createIngestRepo } from './db/ingest.repo.js';
import { isEmbedded, migrate, openDb, type Db } from './db/knex.js';
import { createLockoutRepo } from './db/lockout.repo.js';
import { createQueryRepo } from './db/query.repo.js';
import { createRetrieveRepo } from './db/retrieve.repo.js';
import type { DimseAuthenticator } from './dimse/association.js';
import { dimseAuthenticatorFrom } from './dimse/identity-adapter.js';
import type { DimseDeps, DimseTuning } from './dimse/services.js';
import type { Logger } from './log.js';
import { ensureLocalPki, loadPki, serverNotAfter, type Pki } from './pki/ca.js';
import { pkiCertificateIssuer } from './pki/certificate-issuer.js';
import { fsTokenKeyStore } from './pki/token-key-store.js';
import { auditKeyFromMaster, dataDirAuditKey } from './pki/audit-key.js';
import { dbTokenKeyStore } from './pki/db-token-key-store.js';
import { ensureDbPki, readDbPki } from './pki/db-pki.js';
import { deriveKey, loadMasterKey } from './pki/master-key.js';
import { createNodeSecretsRepo } from './db/node-secrets.repo.js';
import { auditCheckpointFile } from './storage/audit-checkpoint-file.js';
import type { BlobStore } from './core/ports/blob-store.js';
import { createBlobStore } from './storage/create-blob-store.js';
import { observeStatements } from './db/observe.js';
import { createRefusalLog, type Refusal } from './core/refusal-log.js';
import { createMetrics, reasonLabel, type TresorMetrics } from './metrics/registry.js';
import { instrumentBlobStore, instrumentIngest, instrumentLockouts, instrumentQuery, observedAudit } from './metrics/instrument.js';
import { certificateExpirySource } from './metrics/certificates.js';

/** The `iss` and `aud` of every access token this installation issues. */
export const TOKEN_ISSUER = 'tresor';
export const TOKEN_AUDIENCE = 'tresor';

/** Timeouts that are not operator settings; tests shorten them. */
export interface Tuning {
  dimse?: Partial<DimseTuning>;
  /** STOW-RS: a request that sends no bytes for this long is answered 408 (route default 30 s). */
  stowIdleTimeoutMs?: number;
  /** How often a node re-reads the shared token keys from the database (default 60 s). */
  keyRefreshMs?: number;
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
  /** Instead of the configured, shared (database) or generated local PKI (generating RSA keys is slow). */
  pki?: Pki;
  now?: () => Date;
  lockoutPolicy?: Partial<LockoutPolicy>;
  tuning?: Tuning;
  /** Instead of the database-backed ingest repository (failure injection). */
  ingestRepo?: IngestRepo;
  services?: (real: CoreServices) => Partial<CoreServices>;
  /** Wraps the DIMSE authenticator built from identity (e.g. to count calls). */
  dimseAuthenticator?: (real: DimseAuthenticator) => DimseAuthenticator;
  /** Refusal-log throttle (tests shorten or tighten it). */
  refusalThrottle?: { limit?: number; windowMs?: number };
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
  /** Decoding stored pixel data under limits, in child processes (started on first use). */
  pixels: PixelCodec;
  /** `tresor backup`: the consistent snapshot and the blobs it references (core/backup.ts). */
  backup: BackupService;
  /** Authenticates DIMSE associations (certificate, passcode, user identity) against identity. */
  dimseAuthenticator: DimseAuthenticator;
  tuning: Tuning;
  /** Id of a department by name (STOW-RS `department=`), or null. */
  departmentByName(name: string): Promise<number | null>;
  /** Removes blobs a crash or a failed cleanup left without a row (core/blob-journal.ts). */
  sweepBlobs(opts?: { minAgeMs?: number }): Promise<SweepResult>;
  /** Temporary files (C-STORE spooling, STOW parts); same filesystem as the data. */
  tmpDir: string;
  /** The Prometheus registry and its metrics (src/metrics/); served only when TRESOR_METRICS_PORT is set. */
  metrics: TresorMetrics;
  /** An anonymous refusal (429, failed TLS handshake, abandoned STOW): counted, and audited rate-limited. */
  refuse(r: Refusal): void;
  /** An unauthenticated HTTP 401 (audited by identity's token refusals), counted. */
  countUnauthenticated(door: string, reason: string): void;
  /** Writes the summary rows of refusals held back by the throttles (main.ts: every minute and at shutdown). */
  flushRefusals(): Promise<void>;
  /** Called after `pki` took a server certificate renewed by another node (the listeners reload it). */
  onPkiChange(listener: () => void): void;
  close(): Promise<void>;
}

export async function createDeps(config: Readonly<Config>, logger: Logger, overrides: DepsOverrides = {}): Promise<Deps> {
  await fs.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const tmpDir = path.join(config.dataDir, 'tmp');
  await fs.mkdir(tmpDir, { recursive: true, mode: 0o700 });

  // Process metrics (GC, event loop) only when they will be served: tests build many Deps.
  const metrics = createMetrics({ processMetrics: config.metrics !== undefined });
  const masterKey = config.masterKeyFile ? await loadMasterKey(config.masterKeyFile) : undefined;
  const ownDb = !overrides.db;
  const db = overrides.db ?? await openDb({ url: config.databaseUrl, embeddedDir: config.databaseUrl ? undefined : path.join(config.dataDir, 'pgdata') });
  const unobserveDb = observeStatements(db, (seconds, ok) => metrics.dbSeconds.observe({ outcome: ok ? 'success' : 'failure' }, seconds));
  const ownBlobs = !overrides.blobs;
  let blobs: BlobStore | undefined;
  let audit: AuditLog | undefined;
  let stopRefresh: (() => void) | undefined;
  try {
    const applied = await migrate(db);
    if (applied.length) logger.info({ migrations: applied }, 'database migrated');
    // Issue 11: with the master key, the CA, the server certificate and the token keys are
    // the database's (sealed), shared by every node; without it, this data directory's.
    const sealKey = masterKey ? deriveKey(masterKey, 'tresor/sealed-keys/v1') : undefined;
    const secrets = createNodeSecretsRepo(db);
    if (!masterKey && config.databaseUrl) {
      logger.warn(
        'TRESOR_MASTER_KEY_FILE is not set: the CA, server certificate, token keys and audit key are this node\'s own files in its data directory. ' +
          'A second node on this database would not accept this one\'s tokens or devices: for several nodes create one key with `tresor keygen --out FILE` and give every node TRESOR_MASTER_KEY_FILE (README: several nodes)',
      );
    }
    const pki = overrides.pki ?? (config.tls.cert && config.tls.key
      ? await loadPki({ cert: config.tls.cert, key: config.tls.key, ca: config.tls.ca, caKey: config.tls.caKey })
      : sealKey
        ? await ensureDbPki({ repo: secrets, sealKey, hostnames: config.tlsHostnames, existingCa: () => localCa(path.join(config.dataDir, 'tls')) })
        : await ensureLocalPki({ tlsDir: path.join(config.dataDir, 'tls'), hostnames: [os.hostname(), ...config.tlsHostnames] }));

    blobs = overrides.blobs ?? await createBlobStore(config);
    // Issue 14: rows MAC'd with a key the database does not hold, checkpoints outside it.
    const auditKey = masterKey ? auditKeyFromMaster(masterKey) : await dataDirAuditKey(config.dataDir, { create: true });
    // Metrics count what the trail records (metrics/instrument.ts), so both doors count alike.
    audit = observedAudit(createAuditLog(createAuditRepo(db), undefined, {
      // A row that cannot be written after a success is reported, never dropped silently (no PHI: action and door only).
      onLost: (e, err) => logger.error({ ...e, err: String(err) }, 'audit write failed'),
      key: auditKey,
      checkpoints: auditCheckpointFile(config.dataDir),
      checkpointEveryRows: config.audit.checkpointEveryRows,
      checkpointEveryMs: config.audit.checkpointEveryMinutes * 60_000,
      // One line per checkpoint for a syslog sink: sequence, hash, count and time only.
      onCheckpoint: (cp) => logger.info({ auditCheckpoint: cp }, 'audit checkpoint'),
      onCheckpointError: (err) => logger.error({ err: String(err) }, 'audit checkpoint not written: run tresor audit verify'),
    }), metrics);
    const tokens = await openTokenService({
      keys: sealKey ? dbTokenKeyStore(secrets, sealKey) : fsTokenKeyStore(path.join(config.dataDir, 'keys')),
      settings: { issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, ttlSeconds: config.tokenTtlSeconds },
      now: overrides.now,
    });
    const pkiListeners: (() => void)[] = [];
    if (sealKey) {
      // A rotation on another node is seen at once for its tokens (unknown kid → reload,
      // core/identity/tokens.ts) and here at least every minute for signing; a server
      // certificate renewed by another node (`tresor tls renew`) is served from then on.
      const shared = !overrides.pki && !config.tls.cert;
      const refresh = async () => {
        await tokens.reload().catch((err) => logger.warn({ err: String(err) }, 'could not re-read the token keys from the database'));
        if (!shared) return;
        const fresh = await readDbPki(secrets, sealKey).catch((err) => void logger.warn({ err: String(err) }, 'could not re-read the server certificate from the database'));
        if (fresh && (fresh.serverCertPem !== pki.serverCertPem || fresh.serverEc?.certPem !== pki.serverEc?.certPem)) {
          Object.assign(pki, fresh);
          logger.info('serving the server certificate renewed in the database');
          for (const l of pkiListeners) l();
        }
      };
      const t = setInterval(() => void refresh(), overrides.tuning?.keyRefreshMs ?? 60_000);
      t.unref();
      stopRefresh = () => clearInterval(t);
    }
    const identity = createIdentity({
      repo: identityRepoFor(db),
      lockouts: instrumentLockouts(createLockoutRepo(db), metrics),
      audit,
      tokens,
      certificates: pkiCertificateIssuer(pki),
      dataDir: config.dataDir,
      lockoutPolicy: overrides.lockoutPolicy,
      // One budget per address for every node on this database (issue 11).
      refusalThrottle: createSharedRefusalThrottle(createAuditThrottleRepo(db), overrides.now ?? (() => new Date())),
      browserSessions: {
        repo: createBrowserSessionRepo(db),
        policy: { idleSeconds: config.session.idleMinutes * 60, maxSeconds: config.session.maxHours * 3600 },
      },
      now: overrides.now,
    });
    // Timed at the port (metrics/instrument.ts); deps.blobs is the timed one too.
    const store = instrumentBlobStore(blobs, metrics);
    const auditLog = audit;
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
    const real: CoreServices = { ingest: instrumentIngest(ingest, metrics), query: instrumentQuery(query, metrics), retrieve, deletion };
    const refusals = createRefusalLog(audit, overrides.now ?? (() => new Date()), overrides.refusalThrottle);
    // Children start on the first decoding job; their exits and kills are logged (no patient data: pids and reasons).
    const pixels = createPixelCodec(config.decode, (e) => {
      if (e.event === 'spawn') logger.debug({ pid: e.pid }, 'decoder process started');
      else if (e.event === 'killed') logger.warn({ pid: e.pid, reason: e.reason }, 'decoder process killed');
      else logger.info({ pid: e.pid, reason: e.reason, detail: e.detail }, 'decoder process exited');
    });
    const services: CoreServices = { ...real, ...overrides.services?.(real) };
    const overview = createConsoleOverview({
      repo: createOverviewRepo(db),
      audit,
      version: packageVersion(),
      probes: { database: async () => void (await db.raw('select 1')), blobStore: () => store.ping() },
      tlsNotAfter: () => ({
        ca: new Date(new X509Certificate(pki.caCertPem).validTo).toISOString(),
        server: serverNotAfter(pki).toISOString(),
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
    metrics.sources.certificateExpiry = certificateExpirySource(pki, () => identityRepo.listDevices({ all: true }), overrides.now);
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
      pixels,
      backup: createBackupService({ snapshot: (fn) => withSnapshot(db, fn), blobs: store, audit, dataDir: config.dataDir, now: overrides.now }),
      dimseAuthenticator: overrides.dimseAuthenticator?.(realAuthenticator) ?? realAuthenticator,
      tuning: overrides.tuning ?? {},
      async departmentByName(name) {
        return (await identityRepo.findDepartmentByName(name))?.id ?? null;
      },
      sweepBlobs: (opts) =>
        sweepBlobJournal(
          {
            repo: createBlobJournalRepo(db),
            blobs: store,
            onError: (err, key) => logger.error({ err, key }, 'blob sweep: could not delete an orphaned blob'),
          },
          opts,
        ),
      tmpDir,
      metrics,
      refuse(r) {
        metrics.anonymousRefusals.inc({ door: r.via, reason: r.reason });
        void refusals.refuse(r);
      },
      countUnauthenticated(door, reason) {
        metrics.anonymousRefusals.inc({ door, reason: reasonLabel(reason) });
      },
      async flushRefusals() {
        await identity.flushTokenRefusals();
        await refusals.flush();
      },
      onPkiChange: (l) => void pkiListeners.push(l),
      async close() {
        unobserveDb();
        stopRefresh?.();
        await auditLog.close(); // the shutdown checkpoint
        await pixels.close();
        if (ownBlobs) await store.close();
        if (ownDb) await db.destroy();
      },
    };
  } catch (e) {
    unobserveDb();
    stopRefresh?.();
    await audit?.close().catch(() => undefined);
    if (ownBlobs) await blobs?.close().catch(() => undefined);
    if (ownDb) await db.destroy();
    throw e;
  }
}

/** The CA of <data>/tls when there is one: adopted by the database on the first start with the master key. */
async function localCa(tlsDir: string): Promise<{ caCertPem: string; caKeyPem: string } | undefined> {
  try {
    return { caCertPem: await fs.readFile(path.join(tlsDir, 'ca.crt'), 'utf8'), caKeyPem: await fs.readFile(path.join(tlsDir, 'ca.key'), 'utf8') };
  } catch {
    return undefined;
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
    pixels: deps.pixels,
    logger: deps.logger,
    tuning: deps.tuning.dimse,
    recheckWhileReceiving: !isEmbedded(deps.db),
    onAnonymousRefusal: (r) => deps.refuse({ reason: r.reason, via: 'dimse', source: r.address, code: r.code }),
  };
}

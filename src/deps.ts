// Composition root: builds every service once from the Config (plain factories,
// no DI container). main.ts and the end-to-end tests both start from here.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from './config.js';
import { createAuditLog, type AuditLog } from './core/audit.js';
import { createIdentity, type Identity } from './core/identity/index.js';
import { openTokenService } from './core/identity/tokens.js';
import { sweepBlobJournal, type SweepResult } from './core/blob-journal.js';
import { createDeletionService, type DeletionService } from './core/delete.js';
import { createIngestService, type IngestService } from './core/ingest.js';
import { createQueryService, type QueryService } from './core/query.js';
import { createRetrieveService, type RetrieveService } from './core/retrieve.js';
import { createAuditRepo } from './db/audit.repo.js';
import { createBlobJournalRepo } from './db/blob-journal.repo.js';
import { createDeleteRepo } from './db/delete.repo.js';
import { createIdentityRepo as identityRepoFor } from './db/identity.repo.js';
import { createIngestRepo } from './db/ingest.repo.js';
import { migrate, openDb, type Db } from './db/knex.js';
import { createLockoutRepo } from './db/lockout.repo.js';
import { createQueryRepo } from './db/query.repo.js';
import { createRetrieveRepo } from './db/retrieve.repo.js';
import type { Logger } from './log.js';
import { ensureLocalPki, loadPki, type Pki } from './pki/ca.js';
import { pkiCertificateIssuer } from './pki/certificate-issuer.js';
import { fsTokenKeyStore } from './pki/token-key-store.js';
import type { BlobStore } from './core/ports/blob-store.js';
import { createBlobStore } from './storage/create-blob-store.js';

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
  /** Id of a department by name (STOW-RS `department=`), or null. */
  departmentByName(name: string): Promise<number | null>;
  /** Removes blobs a crash or a failed cleanup left without a row (core/blob-journal.ts). */
  sweepBlobs(): Promise<SweepResult>;
  /** Temporary files (C-STORE spooling, STOW parts); same filesystem as the data. */
  tmpDir: string;
  close(): Promise<void>;
}

export async function createDeps(config: Readonly<Config>, logger: Logger): Promise<Deps> {
  await fs.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const tmpDir = path.join(config.dataDir, 'tmp');
  await fs.mkdir(tmpDir, { recursive: true, mode: 0o700 });

  const pki = config.tls.cert && config.tls.key
    ? await loadPki({ cert: config.tls.cert, key: config.tls.key, ca: config.tls.ca })
    : await ensureLocalPki({ tlsDir: path.join(config.dataDir, 'tls'), hostnames: [os.hostname()] });

  const db = await openDb({ url: config.databaseUrl, embeddedDir: config.databaseUrl ? undefined : path.join(config.dataDir, 'pgdata') });
  let blobs: BlobStore | undefined;
  try {
    const applied = await migrate(db);
    if (applied.length) logger.info({ migrations: applied }, 'database migrated');
    blobs = await createBlobStore(config);
    // A row that cannot be written after a success is reported, never dropped silently (no PHI: action and door only).
    const audit = createAuditLog(createAuditRepo(db), undefined, { onLost: (e, err) => logger.error({ ...e, err: String(err) }, 'audit write failed') });
    const tokens = await openTokenService({
      keys: fsTokenKeyStore(path.join(config.dataDir, 'keys')),
      settings: { issuer: 'tresor', audience: 'tresor', ttlSeconds: config.tokenTtlSeconds },
    });
    const identity = createIdentity({ repo: identityRepoFor(db), lockouts: createLockoutRepo(db), audit, tokens, certificates: pkiCertificateIssuer(pki), dataDir: config.dataDir });
    const store = blobs;
    const ingest = createIngestService({
      blobs: store,
      repo: createIngestRepo(db),
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
    const identityRepo = identityRepoFor(db);
    return {
      config,
      logger,
      db,
      blobs: store,
      pki,
      audit,
      identity,
      ingest,
      query,
      retrieve,
      deletion,
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
        await store.close();
        await db.destroy();
      },
    };
  } catch (e) {
    await blobs?.close().catch(() => undefined);
    await db.destroy();
    throw e;
  }
}

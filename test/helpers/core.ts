// The core services on a real database and a real blob store, without any front
// door: what the ingest/retrieve tests and the fault tests run against.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createAuditLog } from '../../src/core/audit.js';
import { createIngestService, type IngestRepo } from '../../src/core/ingest.js';
import type { Principal, Role } from '../../src/core/principal.js';
import { createRetrieveService } from '../../src/core/retrieve.js';
import { createAuditRepo } from '../../src/db/audit.repo.js';
import { createIngestRepo } from '../../src/db/ingest.repo.js';
import type { Db } from '../../src/db/knex.js';
import { createRetrieveRepo } from '../../src/db/retrieve.repo.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { createFsBlobStore } from '../../src/storage/fs-store.js';
import { createS3BlobStore } from '../../src/storage/s3-store.js';
import { startS3Server } from './s3-server.js';

export interface StoreUnderTest {
  name: string;
  open(): Promise<{ store: BlobStore; close(): Promise<void> }>;
}

export function storesUnderTest(): StoreUnderTest[] {
  return [
    {
      name: 'filesystem',
      async open() {
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-blobs-'));
        const store = await createFsBlobStore(dir);
        return { store, close: async () => { await store.close(); await fs.rm(dir, { recursive: true, force: true }); } };
      },
    },
    {
      name: 's3',
      async open() {
        const s3 = await startS3Server();
        const spool = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-spool-'));
        const store = await createS3BlobStore(s3.config, { spoolDir: spool });
        return { store, close: async () => { await store.close(); await s3.stop(); await fs.rm(spool, { recursive: true, force: true }); } };
      },
    },
  ];
}

export function principal(name: string, roles: [number, Role][], extra: Partial<Principal> = {}): Principal {
  return { kind: 'device', id: 1000 + name.length, name, globalAdmin: false, roles: roles.map(([departmentId, role]) => ({ departmentId, role })), ...extra };
}

export async function createDepartment(db: Db, name: string): Promise<number> {
  const [row] = await db('departments').insert({ name }).returning('id');
  return Number(row.id);
}

export async function coreServices(db: Db, blobs: BlobStore, opts: { ingestRepo?: IngestRepo; maxObjectBytes?: number } = {}) {
  const tmpDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-tmp-'));
  const audit = createAuditLog(createAuditRepo(db));
  const ingest = createIngestService({ blobs, repo: opts.ingestRepo ?? createIngestRepo(db), audit, tmpDir, maxObjectBytes: opts.maxObjectBytes ?? 1024 ** 3 });
  const retrieve = createRetrieveService({ repo: createRetrieveRepo(db), blobs, audit });
  return { audit, ingest, retrieve, tmpDir };
}

export async function allKeys(store: BlobStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of store.list('')) keys.push(k);
  return keys.sort();
}

export async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Empties every study table and the blob store (between "each file alone" rounds). */
export async function wipe(db: Db, store: BlobStore): Promise<void> {
  await db.raw('TRUNCATE studies, series, instances, blob_journal RESTART IDENTITY CASCADE');
  for (const k of await allKeys(store)) await store.delete(k);
}

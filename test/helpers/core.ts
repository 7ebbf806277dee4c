// The core services on a real database and a real blob store, without any front
// door (createDeps, as production builds them): what the ingest/retrieve tests and the
// fault tests run against.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { IngestRepo } from '../../src/core/ingest.js';
import type { Principal, Role } from '../../src/core/principal.js';
import { createDeps } from '../../src/deps.js';
import type { Db } from '../../src/db/knex.js';
import { createLogger } from '../../src/log.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { createFsBlobStore } from '../../src/storage/fs-store.js';
import { createS3BlobStore } from '../../src/storage/s3-store.js';
import { testConfig } from './config.js';
import { sharedTestPki } from './pki.js';
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

/**
 * Deps on this database and blob store (both stay the caller's), in a fresh data
 * directory; `ingestRepo` replaces the database-backed one (failure injection).
 */
export async function coreServices(db: Db, blobs: BlobStore, opts: { ingestRepo?: IngestRepo; maxObjectBytes?: number } = {}) {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-core-'));
  const config = testConfig(dataDir, { limits: { maxObjectBytes: opts.maxObjectBytes ?? 1024 ** 3 } });
  const deps = await createDeps(config, createLogger('silent'), { db, blobs, pki: (await sharedTestPki()).pki, ingestRepo: opts.ingestRepo });
  return { deps, audit: deps.audit, ingest: deps.ingest, retrieve: deps.retrieve, tmpDir: deps.tmpDir };
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

// One contract suite for both blob stores (src/storage/), plus what is specific to
// each: file modes and temp-file hygiene for the filesystem, bucket creation,
// privacy and error mapping for S3 (against s3rver, see test/helpers/s3-server.ts).

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { TresorError } from '../../src/core/errors.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { createBlobStore } from '../../src/storage/create-blob-store.js';
import { createFsBlobStore, READ_CHUNK } from '../../src/storage/fs-store.js';
import { isValidKeyPrefix, isValidObjectKey, KEYS_PER_DIRECTORY, newObjectKey } from '../../src/core/ports/object-keys.js';
import { createS3BlobStore, grantsPublicAccess } from '../../src/storage/s3-store.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

const MiB = 1024 * 1024;

interface Harness {
  store: BlobStore;
  /** Temp or spool files the store left behind. */
  leftovers(): Promise<string[]>;
  teardown(): Promise<void>;
}

const scratch: string[] = [];
async function scratchDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'tresor-storage-test-'));
  scratch.push(d);
  return d;
}
afterAll(async () => {
  for (const d of scratch) await rm(d, { recursive: true, force: true });
});

const implementations: { name: string; setup(): Promise<Harness> }[] = [
  {
    name: 'filesystem',
    async setup() {
      const root = await scratchDir();
      const store = await createFsBlobStore(root);
      return { store, leftovers: () => readdir(path.join(root, 'tmp')), teardown: () => store.close() };
    },
  },
  {
    name: 's3',
    async setup() {
      const s3 = await startS3Server();
      const spoolDir = await scratchDir();
      const store = await createS3BlobStore(s3.config, { spoolDir });
      return {
        store,
        leftovers: () => readdir(spoolDir),
        async teardown() {
          await store.close();
          await s3.stop();
        },
      };
    },
  },
];

/** Random bytes as a chunked stream, with their SHA-256. */
function source(size: number): { body: Readable; sha256: string; data: Buffer } {
  const data = randomBytes(size);
  const chunks: Buffer[] = [];
  for (let i = 0; i < size; i += 64 * 1024) chunks.push(data.subarray(i, i + 64 * 1024));
  return { body: Readable.from(chunks), sha256: sha256(data), data };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function sha256Of(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of stream) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const k of it) out.push(k);
  return out;
}

async function expectKind(p: Promise<unknown>, kind: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TresorError);
  expect((err as TresorError).kind).toBe(kind);
}

/** A stream that yields `before` bytes and then fails. */
function failingSource(before: number): Readable {
  return Readable.from(
    (async function* () {
      yield randomBytes(before);
      await new Promise((r) => setTimeout(r, 10));
      throw new Error('source broke');
    })(),
  );
}

describe('object keys', () => {
  it('are random, fanned out from their own hex, and valid', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => newObjectKey()));
    expect(keys.size).toBe(1000);
    for (const k of keys) {
      expect(k).toMatch(/^objects\/[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{32}$/);
      expect(k.slice(14, 18)).toBe(k.slice(8, 10) + k.slice(11, 13));
      expect(isValidObjectKey(k)).toBe(true);
    }
  });

  it('share their fan-out directory in runs of KEYS_PER_DIRECTORY, with fresh random prefixes and their own random rest', () => {
    const keys = Array.from({ length: KEYS_PER_DIRECTORY * 40 }, () => newObjectKey());
    const dir = (k: string) => k.slice(0, 14);
    // Runs: a new directory at most once per KEYS_PER_DIRECTORY keys (a run may start mid-way
    // through this sample), and many different directories over the sample.
    let changes = 0;
    for (let i = 1; i < keys.length; i++) if (dir(keys[i]) !== dir(keys[i - 1])) changes++;
    expect(changes).toBeLessThanOrEqual(40);
    expect(changes).toBeGreaterThanOrEqual(37); // a fresh prefix may repeat the last one (1 in 65,536)
    expect(new Set(keys.map(dir)).size).toBeGreaterThan(30);
    // Within a run only the prefix is shared: the remaining 28 hex digits never repeat.
    expect(new Set(keys.map((k) => k.slice(-28))).size).toBe(keys.length);
    for (const k of keys) expect(isValidObjectKey(k)).toBe(true);
  });

  it('refuses anything else', () => {
    const k = newObjectKey();
    for (const bad of [
      '', '../x', '/etc/passwd', 'objects/../../etc/passwd', `${k}/..`, `/${k}`, `${k}\n`,
      k.toUpperCase(), k.replace(/^objects/, 'object'), `objects/00/00/${k.slice(-32)}`, 42, null,
    ]) {
      expect(isValidObjectKey(bad), String(bad)).toBe(false);
    }
    expect(isValidKeyPrefix('objects/ab/')).toBe(true);
    expect(isValidKeyPrefix('')).toBe(true);
    for (const bad of ['../', '/objects', 'objects/..', 'objects//', 'OBJECTS']) expect(isValidKeyPrefix(bad), bad).toBe(false);
  });
});

describe.each(implementations)('$name blob store contract', ({ setup }) => {
  let h: Harness;
  beforeAll(async () => {
    h = await setup();
  });
  afterAll(async () => {
    await h?.teardown();
  });

  it.each([
    ['an empty', 0],
    ['a small', 1000],
    ['a ~20 MB', 20 * MiB + 123],
  ])('round-trips %s object byte for byte', async (_label, size) => {
    const key = newObjectKey();
    const src = source(size);
    // put() reports the size and the SHA-256 of what it stored, from its one pass.
    expect(await h.store.put(key, src.body)).toEqual({ size, sha256: src.sha256 });
    expect(await h.store.stat(key)).toEqual({ size });
    expect(await sha256Of(await h.store.get(key))).toBe(src.sha256);
  });

  it('round-trips from a file stream, the way Tresor callers put (including an unlinked path)', async () => {
    const dir = await scratchDir();
    for (const [size, unlinkFirst] of [[0, false], [5 * MiB + 7, false], [3 * MiB, true]] as const) {
      const file = path.join(dir, `src-${size}`);
      const data = randomBytes(size);
      await writeFile(file, data);
      const body = createReadStream(file);
      if (unlinkFirst) {
        await new Promise((r) => body.once('open', r));
        await unlink(file); // the stream's fd still reads it
      }
      const key = newObjectKey();
      expect(await h.store.put(key, body)).toEqual({ size, sha256: sha256(data) });
      expect(await sha256Of(await h.store.get(key))).toBe(sha256(data));
    }
  });

  it('rejects get of an absent key with not-found, and stat gives null', async () => {
    const key = newObjectKey();
    await expectKind(h.store.get(key), 'not-found');
    expect(await h.store.stat(key)).toBeNull();
  });

  it('deletes idempotently', async () => {
    const key = newObjectKey();
    await h.store.put(key, source(10).body);
    await h.store.delete(key);
    await h.store.delete(key);
    await h.store.delete(newObjectKey()); // never existed
    expect(await h.store.stat(key)).toBeNull();
    await expectKind(h.store.get(key), 'not-found');
  });

  it('lists keys by prefix', async () => {
    const keys = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const k = newObjectKey();
        await h.store.put(k, source(3).body);
        return k;
      }),
    );
    const all = await collect(h.store.list('objects/'));
    for (const k of keys) expect(all).toContain(k);
    expect(new Set(all).size).toBe(all.length);

    const k = keys[0];
    for (const prefix of [k.slice(0, 11), k.slice(0, 14), k.slice(0, 20), k]) {
      const listed = await collect(h.store.list(prefix));
      expect(listed, prefix).toContain(k);
      expect(listed.every((x) => x.startsWith(prefix)), prefix).toBe(true);
    }
    expect(await collect(h.store.list('objects/zz'))).toEqual([]);
    expect(await collect(h.store.list('tmp'))).toEqual([]);
    await expectKind(collect(h.store.list('../')), 'invalid');
  });

  it('leaves nothing under the key when the source stream fails mid-way', async () => {
    const key = newObjectKey();
    await expect(h.store.put(key, failingSource(2 * MiB))).rejects.toThrow('source broke');
    expect(await h.store.stat(key)).toBeNull();
    expect(await collect(h.store.list(key))).toEqual([]);
    expect(await h.leftovers()).toEqual([]);
  });

  it('refuses invalid keys for every operation', async () => {
    for (const bad of ['../x', '/etc/passwd', '', 'objects/../../etc/passwd', `${newObjectKey()}/../x`]) {
      const body = source(10).body;
      await expectKind(h.store.put(bad, body), 'invalid');
      expect(body.destroyed, bad).toBe(true);
      await expectKind(h.store.get(bad), 'invalid');
      await expectKind(h.store.stat(bad), 'invalid');
      await expectKind(h.store.delete(bad), 'invalid');
    }
    expect(await h.leftovers()).toEqual([]);
  });

  it('handles concurrent puts to different keys', async () => {
    const items = Array.from({ length: 8 }, (_, i) => ({ key: newObjectKey(), src: source(256 * 1024 * (i + 1) + i) }));
    await Promise.all(items.map(({ key, src }) => h.store.put(key, src.body)));
    for (const { key, src } of items) expect(await sha256Of(await h.store.get(key))).toBe(src.sha256);
    expect(await h.leftovers()).toEqual([]);
  });
});

/** A spool file of `size` random bytes in `dir`, as a door leaves it, with what the spooling computed. */
async function spoolFile(dir: string, size: number, mode: number) {
  const bytes = randomBytes(size);
  const info = { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  const spool = path.join(dir, 'in.part');
  await writeFile(spool, bytes, { mode });
  return { bytes, info, spool };
}

describe('filesystem blob store', () => {
  it('writes files 0600 in 0700 directories, through tmp/', async () => {
    const root = await scratchDir();
    const store = await createFsBlobStore(root);
    const key = newObjectKey();
    await store.put(key, source(100).body);
    expect((await stat(path.join(root, key))).mode & 0o777).toBe(0o600);
    for (const d of [root, path.join(root, 'tmp'), path.join(root, 'objects'), path.dirname(path.join(root, key))]) {
      expect((await stat(d)).mode & 0o777, d).toBe(0o700);
    }
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
  });

  it('adopts a complete spool file by moving it (0600, nothing left in tmp/ or at the spool path), and refuses one whose size changed', async () => {
    const root = await scratchDir();
    const spoolDir = await scratchDir();
    const store = await createFsBlobStore(root);
    const { bytes, info, spool } = await spoolFile(spoolDir, 300_000, 0o644);
    const key = newObjectKey();
    expect(await store.adopt!(key, spool, info)).toEqual(info);
    expect(createHash('sha256').update(await readAllFrom(await store.get(key))).digest('hex')).toBe(info.sha256);
    expect((await stat(path.join(root, key))).mode & 0o777).toBe(0o600);
    await expect(stat(spool)).rejects.toThrow();
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);

    // The spool file is not what the caller says it is: nothing under the key.
    await writeFile(spool, bytes.subarray(1));
    const other = newObjectKey();
    await expect(store.adopt!(other, spool, info)).rejects.toThrow();
    expect(await store.stat(other)).toBeNull();
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
  });

  it('adopts a spool file on another filesystem by one flushed copy through tmp/ (rename(2) gives EXDEV)', async () => {
    const root = await scratchDir();
    const store = await createFsBlobStore(root);
    // /dev/shm is a tmpfs, the scratch directories are not (checked: else the test proves nothing).
    const spoolDir = await mkdtemp('/dev/shm/tresor-adopt-');
    try {
      expect((await stat(spoolDir)).dev).not.toBe((await stat(root)).dev);
      const { bytes, info, spool } = await spoolFile(spoolDir, 200_000, 0o600);
      const key = newObjectKey();
      expect(await store.adopt!(key, spool, info)).toEqual(info);
      expect((await readAllFrom(await store.get(key))).equals(bytes)).toBe(true);
      expect((await stat(path.join(root, key))).mode & 0o777).toBe(0o600);
      expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
    } finally {
      await rm(spoolDir, { recursive: true, force: true });
    }
  });

  it('reads an object in chunks of at most READ_CHUNK up to its size, and closes the descriptor at the end and when destroyed early', async () => {
    const root = await scratchDir();
    const store = await createFsBlobStore(root);
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    for (const size of [0, 1, READ_CHUNK, 2 * READ_CHUNK + 12_345]) {
      const key = newObjectKey();
      const src = source(size);
      await store.put(key, src.body);
      const sizes: number[] = [];
      const h = createHash('sha256');
      for await (const c of await store.get(key)) {
        sizes.push((c as Buffer).length);
        h.update(c as Buffer);
      }
      expect(h.digest('hex'), String(size)).toBe(src.sha256);
      // Full reads, then the rest: no short read copied, no read past the end.
      expect(sizes, String(size)).toEqual(size === 0 ? [] : [...Array(Math.floor(size / READ_CHUNK)).fill(READ_CHUNK), ...(size % READ_CHUNK ? [size % READ_CHUNK] : [])]);
      const early = await store.get(key);
      early.destroy();
      await new Promise((r) => early.once('close', r));
    }
    expect(await fds()).toBe(before);
  });

  it('removes temp files older than an hour on start, and only those', async () => {
    const root = await scratchDir();
    await (await createFsBlobStore(root)).close();
    const stale = path.join(root, 'tmp', 'stale.part');
    const fresh = path.join(root, 'tmp', 'fresh.part');
    await writeFile(stale, 'x');
    await writeFile(fresh, 'x');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(stale, twoHoursAgo, twoHoursAgo);
    await createFsBlobStore(root);
    expect(await readdir(path.join(root, 'tmp'))).toEqual(['fresh.part']);
  });
});

describe('s3 blob store', () => {
  let s3: S3TestServer;
  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  const adminClient = () =>
    new Client({ endPoint: s3.config.endPoint, port: s3.config.port, useSSL: false, accessKey: 'S3RVER', secretKey: 'S3RVER' });

  it('creates the bucket when missing, and starts again on an existing one', async () => {
    const config = { ...s3.config, bucket: `tresor-fresh-${randomBytes(4).toString('hex')}` };
    expect(await adminClient().bucketExists(config.bucket)).toBe(false);
    await (await createS3BlobStore(config)).close();
    expect(await adminClient().bucketExists(config.bucket)).toBe(true);
    await (await createS3BlobStore(config)).close();
  });

  it('serves nothing to an anonymous HTTP GET (403)', async () => {
    // Against s3rver this checks the helper's gate (s3rver itself ignores missing
    // credentials); the store's part is to set no policy and refuse public buckets.
    const store = await createS3BlobStore(s3.config);
    const key = newObjectKey();
    await store.put(key, source(100).body);
    const res = await fetch(`${s3.url}/${s3.config.bucket}/${key}`);
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain(key);
    expect(await store.stat(key)).toEqual({ size: 100 });
    await store.close();
  });

  it('refuses to start on a bucket whose policy is public, and accepts a private policy', async () => {
    const publicPolicy = JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::b/*'] }],
    });
    const open = await startS3Server({ bucketPolicy: publicPolicy });
    try {
      await expect(createS3BlobStore(open.config)).rejects.toThrow(/grants access to everyone/);
    } finally {
      await open.stop();
    }
    const privatePolicy = JSON.stringify({
      Statement: [{ Effect: 'Allow', Principal: { AWS: ['arn:aws:iam::123456789012:user/tresor'] }, Action: 's3:*', Resource: '*' }],
    });
    const closed = await startS3Server({ bucketPolicy: privatePolicy });
    try {
      await (await createS3BlobStore(closed.config)).close();
    } finally {
      await closed.stop();
    }
  });

  it('recognises public bucket policies', () => {
    const doc = (s: object) => JSON.stringify({ Version: '2012-10-17', Statement: [s] });
    expect(grantsPublicAccess('')).toBe(false);
    expect(grantsPublicAccess(doc({ Effect: 'Allow', Principal: '*', Action: 's3:GetObject' }))).toBe(true);
    expect(grantsPublicAccess(doc({ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:ListBucket' }))).toBe(true);
    expect(grantsPublicAccess(doc({ Effect: 'Allow', NotPrincipal: { AWS: 'arn:aws:iam::1:root' }, Action: '*' }))).toBe(true);
    expect(grantsPublicAccess(JSON.stringify({ Statement: { Effect: 'Allow', Principal: '*' } }))).toBe(true);
    expect(grantsPublicAccess(doc({ Effect: 'Deny', Principal: '*', Action: '*' }))).toBe(false);
    expect(grantsPublicAccess(doc({ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::1:root' }, Action: '*' }))).toBe(false);
    expect(grantsPublicAccess('not json')).toBe(true);
  });

  it('maps a lost connection to unavailable', async () => {
    const gone = await startS3Server();
    const store = await createS3BlobStore(gone.config);
    await gone.stop();
    await expectKind(store.get(newObjectKey()), 'unavailable');
    await expectKind(store.stat(newObjectKey()), 'unavailable');
    await expectKind(store.put(newObjectKey(), source(10).body), 'unavailable');
    await expectKind(createS3BlobStore(gone.config), 'unavailable');
    await store.close();
  });

  it('removes its default spool directory on close', async () => {
    const before = new Set(await readdir(os.tmpdir()));
    const store = await createS3BlobStore(s3.config);
    const created = (await readdir(os.tmpdir())).filter((d) => !before.has(d) && d.startsWith('tresor-s3-spool-'));
    expect(created).toHaveLength(1);
    await store.put(newObjectKey(), source(10).body);
    await store.close();
    expect(await readdir(os.tmpdir())).not.toContain(created[0]);
  });
});

describe('createBlobStore', () => {
  it('uses the filesystem under the data directory without S3 settings', async () => {
    const dataDir = await scratchDir();
    const store = await createBlobStore(loadConfig({ dataDir }, {}));
    const key = newObjectKey();
    await store.put(key, source(5).body);
    expect((await stat(path.join(dataDir, 'blobs', key))).size).toBe(5);
    await store.close();
  });

  it('uses S3 when S3 settings are given', async () => {
    const s3 = await startS3Server();
    try {
      const dataDir = await scratchDir();
      const c = s3.config;
      const config = loadConfig(
        { dataDir, s3Endpoint: c.endPoint, s3Port: String(c.port), s3UseSsl: 'false', s3AccessKey: c.accessKey, s3SecretKey: c.secretKey, s3Bucket: c.bucket },
        {},
      );
      const store = await createBlobStore(config);
      const key = newObjectKey();
      await store.put(key, source(5).body);
      expect(await new Client({ endPoint: c.endPoint, port: c.port, useSSL: false, accessKey: c.accessKey, secretKey: c.secretKey }).statObject(c.bucket, key)).toMatchObject({ size: 5 });
      await store.close();
    } finally {
      await s3.stop();
    }
  });
});

describe('readiness ping (GET /readyz)', () => {
  it('filesystem: answers while the object directory is there, refuses with unavailable once it is gone', async () => {
    const d = await mkdtemp(path.join(os.tmpdir(), 'tresor-storage-ping-'));
    const store = await createFsBlobStore(d);
    try {
      await store.ping();
      await rm(d, { recursive: true, force: true });
      await expect(store.ping()).rejects.toMatchObject({ kind: 'unavailable', reason: 'storage-unavailable' });
    } finally {
      await store.close();
      await rm(d, { recursive: true, force: true });
    }
  });

  it('S3: answers while the server does, refuses with blob-store-unavailable once it is stopped', async () => {
    const s3 = await startS3Server();
    const store = await createS3BlobStore(s3.config);
    let stopped = false;
    try {
      await store.ping();
      await s3.stop();
      stopped = true;
      await expect(store.ping()).rejects.toMatchObject({ kind: 'unavailable', reason: 'blob-store-unavailable', retryAfterSeconds: 30 });
    } finally {
      await store.close();
      if (!stopped) await s3.stop();
    }
  });
});

async function readAllFrom(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

// Storage faults against a real S3 server (moto_server, test/helpers/moto-server.ts),
// through the production composition (createDeps builds the S3 store from config.s3,
// buildApp, startDimseServer), over real sockets with a real HTTP client and storescu.
// Issue 11 item 3: an outage answers STOW 503 + Retry-After and DIMSE 0xA700, nothing is
// reported stored that is not, a hung S3 is cut by S3_TIMEOUT_MS, a client that got a
// failure finds nothing or the complete object and a re-send succeeds, /readyz follows
// the blob store, and Tresor recovers (bucket re-checked) without a restart.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { newObjectKey } from '../../src/core/ports/object-keys.js';
import type { Deps } from '../../src/deps.js';
import type { DimseServer } from '../../src/dimse/server.js';
import { createS3BlobStore } from '../../src/storage/s3-store.js';
import { allKeys } from '../helpers/core.js';
import { databasesUnderTest } from '../helpers/db.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { multipart, parseMultipartResponse } from '../helpers/dicomweb.js';
import { request, startFaultServer, waitFor, type FaultServer, type Reply } from '../helpers/fault-server.js';
import { run, tlsArgs } from '../helpers/dimse-tools.js';
import { startMotoServer, type MotoServer } from '../helpers/moto-server.js';
import { sha256 } from '../helpers/samples.js';

/** S3_TIMEOUT_MS in these tests: short, so a hung S3 is noticed quickly. */
const TIMEOUT_MS = 1_500;
/** Generous slack on top of it (a loaded 2-core machine): the point is "an answer", not speed. */
const SLACK_MS = 20_000;
const dbu = databasesUnderTest()[databasesUnderTest().length - 1];

describe('S3 faults (moto_server)', () => {
  let moto: MotoServer;
  let dir: string;
  let database: { db: Deps['db']; close(): Promise<void> };
  let server: FaultServer;
  let deps: Deps;
  let dimse: DimseServer;
  let base: string;
  let token: string;
  let caPath: string;
  let ct: { keyPath: string; certPath: string };

  beforeAll(async () => {
    moto = await startMotoServer({ timeoutMs: TIMEOUT_MS });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-s3-faults-'));
    database = await dbu.open();
    server = await startFaultServer(dir, database.db, { s3: moto.config });
    ({ deps, dimse, base, token, caPath, ct } = server);
  }, 180_000);

  afterAll(async () => {
    moto?.resume();
    await server?.close();
    await database?.close();
    await moto?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const instances = async () => Number((await database.db('instances').count({ n: '*' }))[0].n);
  const journaled = async () => new Set((await database.db('blob_journal').select('object_key')).map((r: { object_key: string }) => r.object_key));
  const referenced = async () => new Set((await database.db('instances').select('object_key')).map((r: { object_key: string }) => r.object_key));

  const freshInstance = async (): Promise<Buffer> => reissue('CT_small.dcm').bytes;
  const stow = (bytes: Buffer) => {
    const m = multipart([{ body: bytes }]);
    return request(base, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': m.contentType, accept: 'application/dicom+json' }, body: m.body });
  };
  /** Instance URL from a 200 STOW answer, and a GET of it compared byte for byte. */
  async function expectStoredIdentical(r: Reply, bytes: Buffer): Promise<void> {
    expect(r.status, r.body.toString()).toBe(200);
    const url = new URL(JSON.parse(r.body.toString())['00081199'].Value[0]['00081190'].Value[0] as string, base);
    const got = await request(base, 'GET', url.pathname, { token, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    expect(got.status).toBe(200);
    expect(sha256(parseMultipartResponse(got.headers['content-type'], got.body)[0].body)).toBe(sha256(bytes));
  }
  /** Every object in the bucket is complete and either has its row or is journaled for the sweeper. */
  async function expectNoUntrackedObjects(sizeOfNew: number): Promise<void> {
    const [refs, journal] = [await referenced(), await journaled()];
    for (const key of await allKeys(deps.blobs)) {
      expect(refs.has(key) || journal.has(key), `${key} has no row and no journal entry`).toBe(true);
      if (!refs.has(key)) expect((await deps.blobs.stat(key))?.size).toBe(sizeOfNew);
    }
  }
  const ready = async () => (await request(base, 'GET', '/readyz')).status;

  it('S3 refusing connections: STOW 503 + Retry-After and nothing stored; /readyz 503; after S3 is back, the re-send is stored byte-identical', async () => {
    expect(await ready()).toBe(200);
    const bytes = await freshInstance();
    const before = await instances();
    await moto.stop();
    try {
      const r = await stow(bytes);
      expect(r.status, r.body.toString()).toBe(503);
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      const failed = JSON.parse(r.body.toString())['00081198'].Value[0];
      expect(failed['00081197'].Value[0]).toBe(0xa700);
      expect(await instances()).toBe(before);
      await waitFor('/readyz 503', async () => (await ready()) === 503);
      const body = JSON.parse((await request(base, 'GET', '/readyz')).body.toString());
      expect(body.error.code).toBe('unhealthy');
      expect(body.error.message).toContain('blob-store');
      expect(body.error.message).not.toContain('database');
    } finally {
      // A fresh moto has no bucket at all: Tresor must re-create it without a restart.
      await moto.restart();
    }
    await waitFor('/readyz 200 after S3 came back', async () => (await ready()) === 200);
    await expectStoredIdentical(await stow(bytes), bytes);
    expect(await instances()).toBe(before + 1);
  }, 180_000);

  it('S3 hung (SIGSTOP): the client gets an answer within the timeout; after SIGCONT nothing or the complete object, and the re-send succeeds', async () => {
    const bytes = await freshInstance();
    const before = await instances();
    moto.pause();
    let r: Reply;
    try {
      r = await stow(bytes);
    } finally {
      moto.resume();
    }
    expect(r.status, r.body.toString()).toBe(503);
    expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    expect(r.headers['retry-after']).toBeDefined();
    expect(await instances()).toBe(before);
    // Whatever the woken server still completes is whole and tracked for the sweeper.
    await new Promise((res) => setTimeout(res, 1_000));
    await expectNoUntrackedObjects(bytes.length);
    await expectStoredIdentical(await stow(bytes), bytes);
    // And the sweeper removes what the timed-out upload may have left (journal, core/blob-journal.ts).
  }, 180_000);

  it('DIMSE C-STORE during an outage answers 0xA700 (Out of Resources), and stores once S3 is back', async () => {
    const file = path.join(dir, 'dimse.dcm');
    await fs.writeFile(file, await freshInstance());
    const before = await instances();
    const send = () => run('storescu', ['-v', '-aet', 'CT01', '-aec', deps.config.aeTitle, ...tlsArgs(ct, caPath), '127.0.0.1', String(dimse.port), file]);
    await moto.stop();
    let out: string;
    try {
      const r = await send();
      out = r.stdout + r.stderr;
    } finally {
      await moto.restart();
    }
    expect(out).toMatch(/Received Store Response \(Refused: OutOfResources\)/);
    expect(await instances()).toBe(before);
    const ok = await send();
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout + ok.stderr).toMatch(/Success/);
    expect(await instances()).toBe(before + 1);
  }, 180_000);

  it('the bucket deleted while S3 keeps answering: no stored-but-failed object, and Tresor re-creates the bucket without a restart', async () => {
    // An operator empties and deletes the bucket (or a lifecycle rule does): S3 is up,
    // but answers NoSuchBucket. Issue 11 item 3: recover without a restart.
    const admin = new Client({ endPoint: '127.0.0.1', port: moto.port, useSSL: false, accessKey: 'testing', secretKey: 'testing' });
    const bucket = moto.config.bucket;
    const keys: string[] = [];
    for await (const o of admin.listObjectsV2(bucket, '', true)) if (o.name) keys.push(o.name);
    if (keys.length) await admin.removeObjects(bucket, keys);
    await admin.removeBucket(bucket);
    expect(await admin.bucketExists(bucket)).toBe(false);

    const bytes = await freshInstance();
    const before = await instances();
    const first = await stow(bytes);
    // Either the store noticed NoSuchBucket, re-created the bucket and stored (200), or it
    // answered a retryable 503; never a 409 and never a success for an object not kept.
    expect([200, 503], first.body.toString()).toContain(first.status);
    if (first.status === 503) {
      expect(Number(first.headers['retry-after'])).toBeGreaterThan(0);
      expect(await instances()).toBe(before);
      await waitFor('bucket re-created', async () => admin.bucketExists(bucket));
      await expectStoredIdentical(await stow(bytes), bytes);
    } else {
      await expectStoredIdentical(first, bytes);
    }
    expect(await admin.bucketExists(bucket)).toBe(true);
    expect(await instances()).toBe(before + 1);
    await waitFor('/readyz 200', async () => (await ready()) === 200);
  }, 180_000);

  it('uploads an object above S3_PART_SIZE as a streamed multipart upload (the minio signer), byte-identical on read, nothing left pending', async () => {
    const store = await createS3BlobStore({ ...moto.config, bucket: `${moto.config.bucket}-mp`, partSize: 5 * 1024 * 1024 });
    try {
      const big = randomBytes(12 * 1024 * 1024 + 123);
      const file = path.join(dir, 'big.bin');
      await fs.writeFile(file, big);
      const key = newObjectKey();
      const put = await store.put(key, (await import('node:fs')).createReadStream(file));
      expect(put.size).toBe(big.length);
      expect(put.sha256).toBe(sha256(big));
      const chunks: Buffer[] = [];
      for await (const c of await store.get(key)) chunks.push(c as Buffer);
      expect(sha256(Buffer.concat(chunks))).toBe(sha256(big));
      // It really went up in parts: moto reports a multipart ETag ("<md5>-<parts>").
      const admin = new Client({ endPoint: '127.0.0.1', port: moto.port, useSSL: false, accessKey: 'testing', secretKey: 'testing' });
      const st = await admin.statObject(`${moto.config.bucket}-mp`, key);
      expect(st.etag).toMatch(/-3$/);
      // Nothing left half-uploaded (ListMultipartUploads, which moto implements).
      const pending: unknown[] = [];
      for await (const u of admin.listIncompleteUploads(`${moto.config.bucket}-mp`, '', true)) pending.push(u);
      expect(pending).toEqual([]);
      // And a stream that is not a file is spooled, then goes the same way.
      const key2 = newObjectKey();
      expect((await store.put(key2, Readable.from([big.subarray(0, 6 << 20), big.subarray(6 << 20)]))).sha256).toBe(sha256(big));
      await store.delete(key);
      await store.delete(key2);
    } finally {
      await store.close();
    }
  }, 180_000);

  it('refuses to start on a bucket that is public through its ACL', async () => {
    const bucket = `${moto.config.bucket}-acl`;
    const admin = new Client({ endPoint: '127.0.0.1', port: moto.port, useSSL: false, accessKey: 'testing', secretKey: 'testing' });
    await admin.makeBucket(bucket, 'us-east-1');
    await admin.makeRequestAsync({ method: 'PUT', bucketName: bucket, query: 'acl', headers: { 'x-amz-acl': 'public-read' } });
    await expect(createS3BlobStore({ ...moto.config, bucket })).rejects.toThrow(/ACL that grants access to everyone \(AllUsers\)/);
    await admin.makeRequestAsync({ method: 'PUT', bucketName: bucket, query: 'acl', headers: { 'x-amz-acl': 'authenticated-read' } });
    await expect(createS3BlobStore({ ...moto.config, bucket })).rejects.toThrow(/AuthenticatedUsers/);
    await admin.makeRequestAsync({ method: 'PUT', bucketName: bucket, query: 'acl', headers: { 'x-amz-acl': 'private' } });
    await (await createS3BlobStore({ ...moto.config, bucket })).close();
  }, 180_000);
});

describe('plaintext S3 (issue 14 item 5)', () => {
  const s3Env = (endpoint: string, extra: Record<string, string> = {}) => ({
    S3_ENDPOINT: endpoint,
    S3_ACCESS_KEY: 'k',
    S3_SECRET_KEY: 's',
    S3_BUCKET: 'tresor-bucket',
    S3_USE_SSL: 'false',
    ...extra,
  });

  it('is refused to a non-loopback endpoint, naming the opt-in', () => {
    expect(() => loadConfig({}, s3Env('s3.example.org'))).toThrow(/S3_USE_SSL.*not a loopback address.*S3_ALLOW_PLAINTEXT/s);
    expect(() => loadConfig({}, s3Env('10.0.0.5'))).toThrow(/not a loopback address/);
  });

  it('is allowed to loopback, and elsewhere only with S3_ALLOW_PLAINTEXT=true; TLS needs no opt-in', () => {
    expect(loadConfig({}, s3Env('127.0.0.1')).s3?.useSSL).toBe(false);
    expect(loadConfig({}, s3Env('localhost')).s3?.useSSL).toBe(false);
    expect(loadConfig({}, s3Env('s3.example.org', { S3_ALLOW_PLAINTEXT: 'true' })).s3?.allowPlaintext).toBe(true);
    expect(loadConfig({}, s3Env('s3.example.org', { S3_USE_SSL: 'true' })).s3?.useSSL).toBe(true);
    expect(loadConfig({}, s3Env('127.0.0.1')).s3?.timeoutMs).toBe(30_000);
    expect(() => loadConfig({}, s3Env('127.0.0.1', { S3_TIMEOUT_MS: '0' }))).toThrow(/S3_TIMEOUT_MS/);
  });
});

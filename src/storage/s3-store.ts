// S3 / MinIO blob store (the minio client never leaves storage/, ARCHITECTURE.md rule 7).
//
// Uploads: why not client.putObject(stream)? Reading minio 8.0.7
// (dist/esm/internal/client.mjs, putObject/uploadBuffer/uploadStream):
//  - size unknown: it assumes 5 TiB, so it always goes multipart and BlockStream2
//    collects a whole part (partSize bytes) in memory before sending it;
//  - size known and <= partSize: it reads the WHOLE stream into one Buffer
//    (readAsBuffer) to hash it, then sends a single PUT.
// With the default partSize of 5 GiB either way means buffering the object in RAM.
// So for objects up to partSize this store sends the single PUT itself through the
// client's signer (makeRequestStreamAsync, public in the typings and what putObject
// uses underneath) with a streamed body: one pass over a file computes size, MD5
// and SHA-256 in 64 KiB chunks, a second pass streams the bytes. That needs a file:
//  - Tresor callers put from a temp file, `fs.createReadStream(tmpPath)`: the store
//    opens that path itself and reads it twice (positional reads on one handle, so
//    a rename or unlink of the path meanwhile does not matter);
//  - any other stream is first spooled to a private temp file (bounded memory).
// Integrity: Content-MD5 is checked by S3/MinIO; over plain HTTP the payload SHA-256
// is also signed (over HTTPS minio signs UNSIGNED-PAYLOAD and TLS protects it).
//
// A single PUT implies: objects up to 5 GiB (S3's single-PUT limit; partSize is
// capped there by config), no resumable uploads (a failed put is redone from the
// start by the caller), and atomic visibility: S3 never exposes a partial PUT.
// Objects above partSize (only when an operator lowers S3_PART_SIZE) go through
// minio's multipart upload, which holds one part (partSize bytes) in memory per
// upload and needs ListMultipartUploads - s3rver, the test server, lacks it, which
// is why the default partSize is 5 GiB.
//
// Retries are disabled: minio would retry a PUT by re-piping the already consumed
// body stream. Callers retry whole operations instead.

import { createHash, randomUUID } from 'node:crypto';
import { ReadStream } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Client, S3Error } from 'minio';
import type { S3Config } from '../config.js';
import { isTresorError, notFound, unavailable } from '../core/errors.js';
import type { BlobInfo, BlobStore, PutResult } from '../core/ports/blob-store.js';
import { assertValidKeyPrefix, assertValidObjectKey, isValidObjectKey } from '../core/ports/object-keys.js';
import { ensurePrivateDir, removeStaleFiles, writeNewFile } from './temp-files.js';

export interface S3StoreOptions {
  /** Where streams that are not plain file streams are spooled (0700). Default: a
   *  fresh private directory under os.tmpdir(), removed by close(). */
  spoolDir?: string;
}

export async function createS3BlobStore(cfg: S3Config, options: S3StoreOptions = {}): Promise<BlobStore> {
  const client = new Client({
    endPoint: cfg.endPoint,
    ...(cfg.port === undefined ? {} : { port: cfg.port }),
    useSSL: cfg.useSSL,
    accessKey: cfg.accessKey,
    secretKey: cfg.secretKey,
    region: cfg.region,
    partSize: cfg.partSize,
    retryOptions: { disableRetry: true },
  });
  const bucket = cfg.bucket;
  const where = `S3 bucket "${bucket}" at ${cfg.endPoint}${cfg.port === undefined ? '' : `:${cfg.port}`}`;

  try {
    if (!(await client.bucketExists(bucket))) {
      await client.makeBucket(bucket, cfg.region).catch((e: unknown) => {
        if (s3Code(e) !== 'BucketAlreadyOwnedByYou') throw e; // lost a race with another instance
      });
    }
  } catch (e) {
    throw unavailable('s3-unavailable', `cannot open ${where}`, e);
  }
  await refusePublicBucket(client, bucket, where);

  let spoolDir: string;
  let ownSpoolDir = false;
  if (options.spoolDir) {
    spoolDir = options.spoolDir;
    await ensurePrivateDir(spoolDir);
    await removeStaleFiles(spoolDir);
  } else {
    spoolDir = await mkdtemp(path.join(os.tmpdir(), 'tresor-s3-spool-')); // 0700
    ownSpoolDir = true;
  }

  /** Single PUT with a streamed body of known length (see the top of this file). */
  async function putFile(key: string, fh: FileHandle): Promise<PutResult> {
    const { size, md5, sha256 } = await digest(fh);
    if (size > cfg.partSize) {
      await client.putObject(bucket, key, fh.createReadStream({ start: 0, autoClose: false }), size);
      return { size, sha256 };
    }
    const res = await client.makeRequestStreamAsync(
      {
        method: 'PUT',
        bucketName: bucket,
        objectName: key,
        headers: { 'Content-Length': String(size), 'Content-MD5': md5, 'Content-Type': 'application/octet-stream' },
      },
      fh.createReadStream({ start: 0, autoClose: false }),
      client.enableSHA256 ? sha256 : '', // minio wants '' when it signs UNSIGNED-PAYLOAD (HTTPS)
      [200],
      cfg.region,
    );
    res.resume();
    await finished(res);
    return { size, sha256 };
  }

  return {
    async put(key: string, body: Readable): Promise<PutResult> {
      let spooled: string | undefined;
      let fh: FileHandle | undefined;
      let uploading = false;
      try {
        assertValidObjectKey(key);
        const file = wholeFilePath(body);
        // The path may be gone (caller unlinked it after opening): then spool the stream.
        fh = file === null ? undefined : await open(file, 'r').catch(() => undefined);
        if (fh) {
          body.destroy(); // the store reads the file itself, twice
        } else {
          spooled = path.join(spoolDir, `${randomUUID()}.part`);
          await writeNewFile(spooled, body, false); // rejects with the source's own error
          fh = await open(spooled, 'r');
        }
        uploading = true;
        return await putFile(key, fh);
      } catch (e) {
        body.destroy();
        // Before the upload, errors are the source's or the local disk's; keep a
        // source's ECONNRESET (a client hanging up) from looking like S3 trouble.
        throw uploading ? mapS3Error(e) : mapSpoolError(e);
      } finally {
        await fh?.close();
        if (spooled) await rm(spooled, { force: true });
      }
    },

    async get(key: string): Promise<Readable> {
      assertValidObjectKey(key);
      try {
        return await client.getObject(bucket, key);
      } catch (e) {
        throw mapS3Error(e);
      }
    },

    async stat(key: string): Promise<BlobInfo | null> {
      assertValidObjectKey(key);
      try {
        const st = await client.statObject(bucket, key);
        return { size: st.size };
      } catch (e) {
        if (isS3NotFound(e)) return null;
        throw mapS3Error(e);
      }
    },

    async delete(key: string): Promise<void> {
      assertValidObjectKey(key);
      try {
        await client.removeObject(bucket, key); // S3 DELETE of an absent key is a 204
      } catch (e) {
        if (!isS3NotFound(e)) throw mapS3Error(e);
      }
    },

    list(prefix: string): AsyncIterable<string> {
      return (async function* () {
        assertValidKeyPrefix(prefix); // lazily, like every other failure of list()
        try {
          for await (const item of client.listObjectsV2(bucket, prefix, true)) {
            if (isValidObjectKey(item.name)) yield item.name;
          }
        } catch (e) {
          throw mapS3Error(e);
        }
      })();
    },

    async close(): Promise<void> {
      // Nothing to release in the client (plain HTTP agent); only our own spool dir.
      if (ownSpoolDir) await rm(spoolDir, { recursive: true, force: true });
    },
  };
}

/**
 * Objects must never be publicly readable. Tresor sets no bucket policy; if the
 * bucket already has one that grants anything to everyone, refuse to start. Servers
 * without GetBucketPolicy (s3rver answers 405), buckets without a policy, and
 * credentials not allowed to read the policy (least-privilege keys) are let through:
 * there is nothing we can check.
 */
async function refusePublicBucket(client: Client, bucket: string, where: string): Promise<void> {
  let policy: string;
  try {
    policy = await client.getBucketPolicy(bucket);
  } catch (e) {
    const code = s3Code(e);
    if (code && ['NoSuchBucketPolicy', 'NotImplemented', 'MethodNotAllowed', 'AccessDenied'].includes(code)) return;
    throw unavailable('s3-unavailable', `cannot read the policy of ${where}`, e);
  }
  if (grantsPublicAccess(policy)) {
    throw new Error(
      `${where} has a bucket policy that grants access to everyone (Principal "*"). ` +
        'Tresor stores patient data and refuses to use a public bucket: remove that policy ' +
        '(e.g. `mc anonymous set none <alias>/<bucket>`) and start again.',
    );
  }
}

/** True when an S3 bucket policy (JSON) allows anything to anyone. Unreadable policies count as public. */
export function grantsPublicAccess(policyJson: string): boolean {
  if (policyJson.trim() === '') return false;
  let doc: { Statement?: unknown };
  try {
    doc = JSON.parse(policyJson) as { Statement?: unknown };
  } catch {
    return true;
  }
  const statements = Array.isArray(doc?.Statement) ? doc.Statement : [doc?.Statement];
  const everyone = (p: unknown): boolean =>
    p === '*' ||
    (typeof p === 'object' && p !== null && Object.values(p).some((v) => v === '*' || (Array.isArray(v) && v.includes('*'))));
  return statements.some((s) => {
    if (typeof s !== 'object' || s === null) return false;
    const { Effect, Principal, NotPrincipal } = s as Record<string, unknown>;
    // Allow + NotPrincipal means "everyone except ...": public as well.
    return Effect === 'Allow' && (everyone(Principal) || NotPrincipal !== undefined);
  });
}

/** The path of an unread fs.ReadStream over a whole named file, else null. */
function wholeFilePath(body: Readable): string | null {
  if (!(body instanceof ReadStream)) return null;
  const s = body as ReadStream & { start?: number; end?: number };
  if (typeof s.path !== 'string' || s.readableDidRead || s.destroyed) return null;
  if ((s.start ?? 0) !== 0 || (s.end !== undefined && s.end !== Infinity)) return null;
  return s.path;
}

async function digest(fh: FileHandle): Promise<{ size: number; md5: string; sha256: string }> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  let size = 0;
  for await (const chunk of fh.createReadStream({ start: 0, autoClose: false })) {
    md5.update(chunk as Buffer);
    sha256.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, md5: md5.digest('base64'), sha256: sha256.digest('hex') };
}

const s3Code = (e: unknown): string | undefined => {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

const isS3NotFound = (e: unknown) => ['NoSuchKey', 'NotFound'].includes(s3Code(e) ?? '');

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE',
  'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
]);

/**
 * NoSuchKey/NotFound → not-found; connection, TLS and S3 server errors → unavailable
 * (the object store cannot serve us: HTTP 503, DIMSE 0xA700); anything else passes through.
 */
function mapS3Error(e: unknown): unknown {
  if (isTresorError(e)) return e;
  if (isS3NotFound(e)) return notFound('object-not-found');
  const code = s3Code(e) ?? '';
  if (e instanceof S3Error || NETWORK_CODES.has(code) || /CERT|TLS|SSL/.test(code)) {
    return unavailable('s3-unavailable', 'object storage is unavailable', e);
  }
  return e;
}

/** Spool disk full → unavailable; source-stream errors pass through unchanged. */
function mapSpoolError(e: unknown): unknown {
  const code = s3Code(e);
  return code === 'ENOSPC' || code === 'EDQUOT' ? unavailable('storage-full', 'spool storage is full', e) : e;
}

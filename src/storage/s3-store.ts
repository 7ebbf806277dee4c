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
// Objects above partSize (only when an operator lowers S3_PART_SIZE) go up as a
// multipart upload, streamed part by part from the same file (putMultipart below;
// tested against moto_server - s3rver has no multipart support, which is why the
// default partSize is 5 GiB).
//
// Retries are disabled: minio would retry a PUT by re-piping the already consumed
// body stream. Callers retry whole operations instead.
//
// Faults (issue 11 item 3). minio 8.0.7 sets no timeout anywhere (internal/request.mjs
// calls transport.request(opt) and waits for ever; `setRequestOptions` passes only
// TLS/agent fields), so every request goes through our own `transport` (a documented
// Client option) that arms an idle timeout on the request's socket: connecting, sending
// and waiting for and reading the answer all count, and S3_TIMEOUT_MS without a byte
// either way destroys the request (ETIMEDOUT). A transfer that keeps moving is never cut.
// Connection failures, timeouts and S3 5xx become TresorError('blob-store-unavailable')
// with Retry-After (HTTP 503, DIMSE 0xA700). A PUT that timed out may still complete
// inside S3 later (a hung server that wakes up): the core keeps its journal entry then,
// so the sweeper removes the object (core/ingest.ts, core/blob-journal.ts).
//
// Recovery: the bucket is checked at start and again whenever S3 answers NoSuchBucket
// (an S3 restart without persistence, an operator who deleted it): it is created again,
// as at start, and checked for public access again; a put is then retried once (it
// reads from a file, so it can). Nothing needs a restart.

import { createHash, randomUUID } from 'node:crypto';
import { ReadStream } from 'node:fs';
import http, { type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import https from 'node:https';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Client, S3Error } from 'minio';
import { isLoopbackHost, type S3Config } from '../config.js';
import { isTresorError, notFound, TresorError, unavailable } from '../core/errors.js';
import type { BlobInfo, BlobStore, PutResult } from '../core/ports/blob-store.js';
import { assertValidKeyPrefix, assertValidObjectKey, isValidObjectKey } from '../core/ports/object-keys.js';
import { ensurePrivateDir, removeStaleFiles, writeNewFile } from './temp-files.js';

export interface S3StoreOptions {
  /** Where streams that are not plain file streams are spooled (0700). Default: a
   *  fresh private directory under os.tmpdir(), removed by close(). */
  spoolDir?: string;
}

/** Default idle timeout of one S3 request (S3_TIMEOUT_MS). */
export const DEFAULT_S3_TIMEOUT_MS = 30_000;
/** Retry-After for an outage: long enough for S3 to come back, short enough for a modality's queue. */
const OUTAGE_RETRY_AFTER_S = 30;
/** GET /readyz must answer quickly even when S3 hangs. */
const PING_TIMEOUT_MS = 2_000;

export async function createS3BlobStore(cfg: S3Config, options: S3StoreOptions = {}): Promise<BlobStore> {
  const timeoutMs = cfg.timeoutMs ?? DEFAULT_S3_TIMEOUT_MS;
  if (!cfg.useSSL && !isLoopbackHost(cfg.endPoint)) {
    // config.ts refuses this without S3_ALLOW_PLAINTEXT; say it loudly at every start.
    process.emitWarning(
      `S3 traffic to ${cfg.endPoint} is NOT encrypted (S3_USE_SSL=false, S3_ALLOW_PLAINTEXT=true): patient data and ` +
        'request signatures cross the network in clear. Use TLS unless this network is trusted.',
      { code: 'TRESOR_S3_PLAINTEXT' },
    );
  }
  const client = new Client({
    endPoint: cfg.endPoint,
    ...(cfg.port === undefined ? {} : { port: cfg.port }),
    useSSL: cfg.useSSL,
    accessKey: cfg.accessKey,
    secretKey: cfg.secretKey,
    region: cfg.region,
    partSize: cfg.partSize,
    retryOptions: { disableRetry: true },
    transport: timedTransport(cfg.useSSL ? https : http, timeoutMs),
  });
  const bucket = cfg.bucket;
  const where = `S3 bucket "${bucket}" at ${cfg.endPoint}${cfg.port === undefined ? '' : `:${cfg.port}`}`;

  /** Creates the bucket when absent and refuses a public one (at start, and after NoSuchBucket). */
  async function ensureBucket(): Promise<void> {
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
  }
  await ensureBucket();
  /** Set when S3 said NoSuchBucket: the next operation checks (and creates) the bucket first. */
  let bucketLost = false;
  let recheck: Promise<void> | undefined;
  async function bucketReady(): Promise<void> {
    if (!bucketLost) return;
    recheck ??= ensureBucket()
      .then(() => void (bucketLost = false))
      .finally(() => void (recheck = undefined));
    try {
      await recheck;
    } catch (e) {
      throw isTresorError(e) && e.kind === 'unavailable' ? outage(e.cause ?? e) : e;
    }
  }
  /** Runs one S3 operation; NoSuchBucket marks the bucket for a re-check. */
  async function op<T>(fn: () => Promise<T>): Promise<T> {
    await bucketReady();
    try {
      return await fn();
    } catch (e) {
      if (s3Code(e) === 'NoSuchBucket') bucketLost = true;
      throw e;
    }
  }

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
      await putMultipart(key, fh, size);
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

  /**
   * Multipart upload of a file above partSize, each part streamed from the file with its
   * own Content-MD5 (and signed SHA-256 over HTTP), so memory stays at one 64 KiB chunk.
   * Not minio's putObject: in minio 8.0.7 uploadStream numbers parts from 2 and, against
   * moto_server, sent one part of three and failed on completion (read in
   * dist/esm/internal/client.mjs uploadStream: `partNumber++` before the upload). On any
   * failure the upload is aborted, so S3 keeps no orphaned parts (best effort: an abort
   * during an outage fails too, and the bucket's lifecycle rule for incomplete uploads, if
   * any, is the backstop). S3 shows the object only after completion: never a partial one.
   */
  async function putMultipart(key: string, fh: FileHandle, size: number): Promise<void> {
    const uploadId = await client.initiateNewMultipartUpload(bucket, key, { 'Content-Type': 'application/octet-stream' });
    try {
      const etags: { part: number; etag: string }[] = [];
      for (let part = 1, start = 0; start < size; part++, start += cfg.partSize) {
        const end = Math.min(size, start + cfg.partSize) - 1; // inclusive, as fs streams count
        const { md5, sha256 } = await digest(fh, start, end);
        const res = await client.makeRequestStreamAsync(
          {
            method: 'PUT',
            bucketName: bucket,
            objectName: key,
            query: `partNumber=${part}&uploadId=${encodeURIComponent(uploadId)}`,
            headers: { 'Content-Length': String(end - start + 1), 'Content-MD5': md5 },
          },
          fh.createReadStream({ start, end, autoClose: false }),
          client.enableSHA256 ? sha256 : '',
          [200],
          cfg.region,
        );
        res.resume();
        await finished(res);
        etags.push({ part, etag: String(res.headers.etag ?? '').replace(/^"|"$/g, '') });
      }
      await completeMultipart(key, uploadId, etags);
    } catch (e) {
      await client.abortMultipartUpload(bucket, key, uploadId).catch(() => undefined);
      throw e;
    }
  }

  /**
   * CompleteMultipartUpload, answered by hand: minio's parser reads only a
   * <CompleteMultipartUploadResult> root and throws a TypeError on moto_server's
   * <CompleteMultipartUploadResponse>. S3 may answer 200 with an <Error> body
   * (documented for CompleteMultipartUpload): that is a failure.
   */
  async function completeMultipart(key: string, uploadId: string, etags: { part: number; etag: string }[]): Promise<void> {
    const xml =
      '<CompleteMultipartUpload>' +
      etags.map((e) => `<Part><PartNumber>${e.part}</PartNumber><ETag>"${e.etag.replace(/[^0-9a-fA-F-]/g, '')}"</ETag></Part>`).join('') +
      '</CompleteMultipartUpload>';
    const res = await client.makeRequestAsync({ method: 'POST', bucketName: bucket, objectName: key, query: `uploadId=${encodeURIComponent(uploadId)}` }, xml);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const failed = /<Error>[\s\S]*?<Code>([^<]*)<\/Code>/.exec(body);
    if (failed || !/<ETag>/.test(body)) {
      throw Object.assign(new S3Error(`CompleteMultipartUpload failed: ${failed?.[1] ?? 'unexpected answer'}`), { code: failed?.[1] ?? 'InternalError' });
    }
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
        const handle = fh;
        try {
          return await op(() => putFile(key, handle));
        } catch (e) {
          // S3 may answer NoSuchBucket before it has read the body and drop the connection:
          // the client then sees a write error, not the code. Any failed put checks the bucket.
          if (s3Code(e) !== 'NoSuchBucket' && !(await client.bucketExists(bucket).then((x) => !x, () => false))) throw e;
          bucketLost = true;
          return await op(() => putFile(key, handle)); // the bucket is back: once more, from the file
        }
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
        return await op(() => client.getObject(bucket, key));
      } catch (e) {
        throw mapS3Error(e);
      }
    },

    async stat(key: string): Promise<BlobInfo | null> {
      assertValidObjectKey(key);
      try {
        const st = await op(() => client.statObject(bucket, key));
        return { size: st.size };
      } catch (e) {
        if (isS3NotFound(e)) return null;
        throw mapS3Error(e);
      }
    },

    async delete(key: string): Promise<void> {
      assertValidObjectKey(key);
      try {
        await op(() => client.removeObject(bucket, key)); // S3 DELETE of an absent key is a 204
      } catch (e) {
        if (!isS3NotFound(e)) throw mapS3Error(e);
      }
    },

    list(prefix: string): AsyncIterable<string> {
      return (async function* () {
        assertValidKeyPrefix(prefix); // lazily, like every other failure of list()
        try {
          await bucketReady();
          for await (const item of client.listObjectsV2(bucket, prefix, true)) {
            if (isValidObjectKey(item.name)) yield item.name;
          }
        } catch (e) {
          if (s3Code(e) === 'NoSuchBucket') bucketLost = true;
          throw mapS3Error(e);
        }
      })();
    },

    async ping(): Promise<void> {
      // HEAD bucket under a short deadline of its own (the request timeout may be long).
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('S3 did not answer HEAD bucket in time'), { code: 'ETIMEDOUT' })), PING_TIMEOUT_MS);
      });
      try {
        await Promise.race([
          (async () => {
            if (!(await client.bucketExists(bucket))) bucketLost = true;
            await bucketReady();
          })(),
          deadline,
        ]);
      } catch (e) {
        throw mapS3Error(e);
      } finally {
        clearTimeout(timer);
      }
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
  let policy = '';
  try {
    policy = await client.getBucketPolicy(bucket);
  } catch (e) {
    const code = s3Code(e);
    if (!(code && ['NoSuchBucketPolicy', 'NotImplemented', 'MethodNotAllowed', 'AccessDenied'].includes(code))) {
      throw unavailable('s3-unavailable', `cannot read the policy of ${where}`, e);
    }
  }
  if (grantsPublicAccess(policy)) {
    throw new Error(
      `${where} has a bucket policy that grants access to everyone (Principal "*"). ` +
        'Tresor stores patient data and refuses to use a public bucket: remove that policy ' +
        '(e.g. `mc anonymous set none <alias>/<bucket>`) and start again.',
    );
  }
  await refusePublicAcl(client, bucket, where);
}

/**
 * The other way a bucket is public: its ACL grants to the AllUsers or AuthenticatedUsers
 * group (any AWS account at all), e.g. a canned `public-read` ACL. Same leniency as for
 * the policy: a server without GetBucketAcl or a key not allowed to read it passes.
 */
async function refusePublicAcl(client: Client, bucket: string, where: string): Promise<void> {
  let acl: string;
  try {
    const res = await client.makeRequestAsync({ method: 'GET', bucketName: bucket, query: 'acl' });
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    acl = Buffer.concat(chunks).toString('utf8');
  } catch (e) {
    const code = s3Code(e);
    if (code && ['NotImplemented', 'MethodNotAllowed', 'AccessDenied'].includes(code)) return;
    throw unavailable('s3-unavailable', `cannot read the ACL of ${where}`, e);
  }
  const group = publicAclGroup(acl);
  if (group) {
    throw new Error(
      `${where} has an ACL that grants access to ${group}. Tresor stores patient data and refuses to use a ` +
        'public bucket: make the ACL private (e.g. `aws s3api put-bucket-acl --bucket <bucket> --acl private`) and start again.',
    );
  }
}

/** The public group an S3 AccessControlPolicy (XML) grants anything to, or null. */
export function publicAclGroup(aclXml: string): string | null {
  for (const m of aclXml.matchAll(/<URI>\s*([^<]+?)\s*<\/URI>/g)) {
    const uri = m[1];
    if (/\/groups\/global\/AllUsers$/.test(uri)) return 'everyone (AllUsers)';
    if (/\/groups\/global\/AuthenticatedUsers$/.test(uri)) return 'every AWS account (AuthenticatedUsers)';
  }
  return null;
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

async function digest(fh: FileHandle, start = 0, end?: number): Promise<{ size: number; md5: string; sha256: string }> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  let size = 0;
  for await (const chunk of fh.createReadStream({ start, ...(end === undefined ? {} : { end }), autoClose: false })) {
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
  if (e instanceof S3Error || NETWORK_CODES.has(code) || /CERT|TLS|SSL/.test(code) || isHttp5xx(e)) return outage(e);
  return e;
}

/** The blob store cannot serve us now: HTTP 503 + Retry-After, DIMSE 0xA700. */
function outage(cause: unknown): TresorError {
  return new TresorError('blob-store-unavailable', 'object storage is unavailable; try again later', { cause, retryAfterSeconds: OUTAGE_RETRY_AFTER_S });
}

/** minio 8 reports some S3 5xx answers as plain Errors ("Retryable HTTP status: 503", "Request failed after ..."). */
const isHttp5xx = (e: unknown) => e instanceof Error && /HTTP status: 5\d\d|Request failed after/.test(e.message);

/** An http/https module whose requests carry an idle timeout (see the top of this file). */
function timedTransport(base: typeof http | typeof https, timeoutMs: number): Pick<typeof http, 'request'> {
  // minio calls transport.request(options, callback) only (internal/request.mjs).
  const request = (opt: RequestOptions, cb?: (res: IncomingMessage) => void): ClientRequest => {
    const req = base.request(opt, cb);
    req.setTimeout(timeoutMs, () => {
      req.destroy(Object.assign(new Error(`S3 sent nothing for ${timeoutMs} ms (S3_TIMEOUT_MS)`), { code: 'ETIMEDOUT' }));
    });
    return req;
  };
  return { request: request as typeof http.request };
}

/** Spool disk full → unavailable; source-stream errors pass through unchanged. */
function mapSpoolError(e: unknown): unknown {
  const code = s3Code(e);
  return code === 'ENOSPC' || code === 'EDQUOT' ? unavailable('storage-full', 'spool storage is full', e) : e;
}

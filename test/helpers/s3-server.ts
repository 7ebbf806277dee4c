// An in-process S3 server for tests: s3rver on 127.0.0.1, a random free port and a
// throwaway directory, silent. Use:
//   const s3 = await startS3Server();
//   const store = await createS3BlobStore(s3.config);   // creates the bucket
//   ...
//   await store.close(); await s3.stop();
//
// Two gaps of s3rver that matter for a PACS, and what this helper does about them:
//  - s3rver serves requests that carry no credentials at all (it only checks a
//    signature when one is present). Real S3 and MinIO refuse anonymous requests to
//    a bucket without a public policy. A gate in front of s3rver restores that
//    default: any request without an Authorization header or query signature gets
//    403 AccessDenied. So an "anonymous GET is refused" test against this server
//    checks the test double, not s3rver; it only means something on real MinIO/S3.
//  - s3rver does not verify V4 signatures (any secret works with its access key
//    S3RVER) and has no bucket policies (GET ?policy → 405). `bucketPolicy` makes the
//    gate answer GET ?policy with a given document, to test the store's refusal to
//    start on a public bucket.

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { S3Config } from '../../src/config.js';

/** The part of s3rver (untyped CommonJS) this helper uses. */
interface S3rverApp {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  logger: { close(): void };
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverApp;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;

export interface StartS3ServerOptions {
  /** JSON served for GET /<bucket>?policy (s3rver itself has no bucket policies). */
  bucketPolicy?: string;
}

export interface S3TestServer {
  config: S3Config;
  /** Base URL, e.g. http://127.0.0.1:41234 (objects are at <url>/<bucket>/<key>). */
  url: string;
  stop(): Promise<void>;
}

export async function startS3Server(options: StartS3ServerOptions = {}): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'tresor-s3rver-'));
  const s3rver = new S3rver({ directory, silent: true, vhostBuckets: false });
  const handle = s3rver.callback();

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = url.searchParams;
    const signed = req.headers.authorization !== undefined || q.has('X-Amz-Signature') || q.has('Signature');
    if (!signed) {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      return;
    }
    if (options.bucketPolicy !== undefined && req.method === 'GET' && q.has('policy')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(options.bucketPolicy);
      return;
    }
    handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    config: {
      endPoint: '127.0.0.1',
      port,
      useSSL: false,
      accessKey: 'S3RVER', // s3rver's only account
      secretKey: 'S3RVER',
      bucket: `tresor-test-${randomBytes(6).toString('hex')}`,
      region: 'us-east-1',
      partSize: 5 * 1024 ** 3, // the config default: single PUTs (s3rver has no ListMultipartUploads)
    },
    url: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
      s3rver.logger.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

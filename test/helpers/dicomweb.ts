// A real Tresor HTTPS server with DICOMweb (helpers/http.ts: createDeps + buildApp as
// main.ts wires them, real JWT login through POST /auth/token) on a real database and
// a real blob store, plus the small HTTP and multipart tools the DICOMweb tests share.

import https from 'node:https';
import tls, { type PeerCertificate } from 'node:tls';
import fs from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { AuditLog } from '../../src/core/audit.js';
import type { IngestService } from '../../src/core/ingest.js';
import type { RetrieveService } from '../../src/core/retrieve.js';
import type { DepsOverrides } from '../../src/deps.js';
import type { Db } from '../../src/db/knex.js';
import type { DicomwebConfig } from '../../src/http/dicomweb/types.js';
import type { Pki } from '../../src/pki/ca.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { ADMIN_PASSWORD, USER_PASSWORD } from './fixtures.js';
import { startTestServer, tempDir, type TestServer } from './http.js';

export { ADMIN_PASSWORD, USER_PASSWORD };

export interface DicomwebServer extends TestServer {
  store: BlobStore;
  /** The core services of the server's Deps. */
  core: { audit: AuditLog; ingest: IngestService; retrieve: RetrieveService; tmpDir: string };
  adminToken: string;
  /** Creates a department (by name) and returns its id. */
  department(name: string): Promise<number>;
  /** Creates a user with these roles and returns a bearer token. */
  user(name: string, roles: { department: string; role: 'reader' | 'writer' | 'admin' }[], globalAdmin?: boolean): Promise<string>;
}

export interface DicomwebServerOptions {
  db: Db;
  pki: Pki;
  limits?: Partial<DicomwebConfig['limits']>;
  publicUrl?: string;
  corsOrigins?: string[];
  stowIdleTimeoutMs?: number;
  /** A blob store to use instead of a fresh filesystem one (closed by the caller). */
  store?: BlobStore;
  services?: DepsOverrides['services'];
}

export async function startDicomwebServer(o: DicomwebServerOptions): Promise<DicomwebServer> {
  const dir = await tempDir('tresor-dicomweb-');
  const limits = { maxRequestBytes: 4 * 1024 ** 3, maxParts: 1000, maxObjectBytes: 2 * 1024 ** 3, ...o.limits };
  const server = await startTestServer({
    db: o.db,
    pki: o.pki,
    dataDir: dir,
    adminPassword: ADMIN_PASSWORD,
    corsOrigins: o.corsOrigins,
    publicUrl: o.publicUrl,
    limits,
    stowIdleTimeoutMs: o.stowIdleTimeoutMs,
    blobs: o.store,
    services: o.services,
  });
  const { deps } = server;
  const adminToken = await server.login('admin', ADMIN_PASSWORD);
  return {
    ...server,
    store: deps.blobs,
    core: { audit: deps.audit, ingest: deps.ingest, retrieve: deps.retrieve, tmpDir: deps.tmpDir },
    adminToken,
    async department(name) {
      const r = await server.request('POST', '/admin/departments', { token: adminToken, body: { name } });
      if (r.status !== 201) throw new Error(`department ${name}: ${r.status} ${r.text}`);
      return (await deps.departmentByName(name))!;
    },
    async user(name, roles, globalAdmin = false) {
      const r = await server.request('POST', '/admin/users', { token: adminToken, body: { username: name, password: USER_PASSWORD, roles, globalAdmin } });
      if (r.status !== 201) throw new Error(`user ${name}: ${r.status} ${r.text}`);
      return server.login(name, USER_PASSWORD);
    },
    async close() {
      await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  json: any;
}

/** One HTTPS request on a fresh socket; the body may be a Buffer or a stream. */
export function raw(
  base: string,
  ca: string,
  method: string,
  urlPath: string,
  opts: { token?: string; headers?: Record<string, string>; body?: Buffer | string | Readable } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  return new Promise((resolve, reject) => {
    // The path is sent as written (new URL() would resolve %2E%2E and ../ on our side).
    const u = new URL(base);
    // The certificate is checked against the server we connect to, even when a test sends another Host.
    const checkServerIdentity = (_host: string, cert: PeerCertificate) => tls.checkServerIdentity(u.hostname, cert);
    const req = https.request({ host: u.hostname, port: u.port, path: urlPath, method, headers, ca, agent: false, checkServerIdentity }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        let json: any;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
      });
    });
    req.on('error', reject);
    const b = opts.body;
    if (b === undefined) req.end();
    else if (typeof b === 'string' || Buffer.isBuffer(b)) req.end(b);
    else {
      b.on('error', (e) => req.destroy(e));
      b.pipe(req);
    }
  });
}

/** multipart/related body of DICOM parts, as STOW-RS wants it. */
export function multipart(parts: { body: Buffer; contentType?: string }[], boundary = 'test-boundary-1234567890'): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${p.contentType ?? 'application/dicom'}\r\n\r\n`), p.body, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

/** Splits a multipart/related response into parts (headers lower-cased). */
export function parseMultipartResponse(contentType: string | string[] | undefined, body: Buffer): { headers: Record<string, string>; body: Buffer }[] {
  const ct = String(contentType ?? '');
  const m = /boundary=("?)([^";]+)\1/.exec(ct);
  if (!m) throw new Error(`no boundary in ${ct}`);
  const delim = Buffer.from(`--${m[2]}`);
  const parts: { headers: Record<string, string>; body: Buffer }[] = [];
  let pos = body.indexOf(delim);
  if (pos !== 0) throw new Error('body does not start with the delimiter');
  for (;;) {
    pos += delim.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break;
    pos += 2; // CRLF
    const headEnd = body.indexOf('\r\n\r\n', pos);
    const headers: Record<string, string> = {};
    for (const line of body.subarray(pos, headEnd).toString('latin1').split('\r\n')) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const start = headEnd + 4;
    // Trust Content-Length when given (binary data may contain the delimiter text).
    const len = headers['content-length'] !== undefined ? Number(headers['content-length']) : body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), start) - start;
    parts.push({ headers, body: body.subarray(start, start + len) });
    pos = start + len + 2; // CRLF before the next delimiter
    if (!body.subarray(pos, pos + delim.length).equals(delim)) throw new Error('malformed multipart response');
  }
  return parts;
}

/**
 * Uploads a (possibly endless) stream and resolves with the response as soon as it
 * arrives, even if the server stops reading and closes while we are still sending
 * (what it must do for an upload over the limit). Rejects only when no response came.
 */
export function upload(
  base: string,
  ca: string,
  urlPath: string,
  opts: { token?: string; headers?: Record<string, string>; body: Readable },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string; sentBytes: number }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const req = https.request(new URL(urlPath, base), { method: 'POST', headers, ca, agent: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = () => {
        opts.body.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), sentBytes: sent });
      };
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    opts.body.on('data', (c: Buffer) => {
      sent += c.length;
    });
    opts.body.on('error', () => req.destroy());
    opts.body.pipe(req);
  });
}

// The DICOMweb front door (PS3.18): QIDO-RS, WADO-RS, STOW-RS, WADO-URI and DELETE
// under one Fastify plugin, registered by app.ts under the prefix /dicomweb.
//
// Order of every request: route match → authentication (401; app.ts's global hook,
// which runs before any hook of ours) → UID syntax check (400 before any lookup,
// PS3.5 §9.1) → handler, which calls the core services; access decisions are made
// there (core/access.ts), never here. Anything outside the caller's departments is
// reported exactly like a UID that does not exist.

import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { invalid } from '../../core/errors.js';
import { isValidUid } from '../../core/dicom/uids.js';
import type { DicomwebContext } from './context.js';
import type { DicomwebOptions } from './types.js';
import { registerDeleteRoutes } from './delete.js';
import { registerQidoRoutes } from './qido.js';
import { registerRenderedRoutes } from './rendered.js';
import { registerStowRoutes } from './stow.js';
import { registerWadoUriRoutes } from './wado-uri.js';
import { registerWadoRoutes } from './wado.js';

export type { DicomwebContext };

const UID_PARAMS = ['study', 'series', 'instance'] as const;
/** WADO-URI carries its UIDs in the query string (PS3.18 §9.2). */
const UID_QUERY = ['studyUID', 'seriesUID', 'objectUID'] as const;

/** PS3.5 §9.1 syntax of every UID the request names; 400 otherwise, before authentication or any lookup. */
function checkUids(request: FastifyRequest): void {
  const params = (request.params ?? {}) as Record<string, unknown>;
  for (const name of UID_PARAMS) {
    if (name in params && !isValidUid(params[name])) throw invalid('invalid-uid', `The ${name} UID is not a valid UID (digits and dots, at most 64 characters).`);
  }
  if ((request.routeOptions.config as { uidQuery?: boolean } | undefined)?.uidQuery) {
    const q = (request.query ?? {}) as Record<string, unknown>;
    for (const name of UID_QUERY) {
      if (q[name] !== undefined && !isValidUid(q[name])) throw invalid('invalid-uid', `${name} is not a valid UID (digits and dots, at most 64 characters).`);
    }
  }
}

/** How long, and how many bytes, of an unwanted request body we read before closing. */
const LINGER_MS = 2000;
const LINGER_BYTES = 16 * 1024 * 1024;

/**
 * After answering a request whose body we did not read, keep reading (and dropping)
 * it for a short while before closing: closing a socket with unread bytes sends a
 * TCP reset, which can destroy our answer in the client's buffers before it reads it
 * (the "lingering close" of Apache and nginx). Bounded in time and bytes, so a
 * 1 GB upload over the limit costs at most LINGER_BYTES.
 */
function lingerThenClose(req: IncomingMessage): void {
  // HTTP/2: req.socket is the whole connection, shared by other streams. The unread
  // body is refused on this stream alone, RST_STREAM(NO_ERROR) after the complete
  // response (RFC 9113 §8.1).
  const h2 = (req as { stream?: { close(code?: number): void; destroyed?: boolean } }).stream;
  if (req.httpVersionMajor === 2) return void (h2 && !h2.destroyed && h2.close(0));
  const socket = req.socket;
  // (app.inject's simulated requests have no real socket to linger on.)
  if (!socket || socket.destroyed || typeof socket.destroy !== 'function') return;
  let n = 0;
  const done = () => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(done, LINGER_MS);
  timer.unref();
  req.on('data', (c: Buffer) => {
    n += c.length;
    if (n > LINGER_BYTES) done();
  });
  req.on('end', done);
  req.on('error', done);
  req.resume();
}

export const dicomwebRoutes: FastifyPluginAsync<DicomwebOptions> = async (app: FastifyInstance, opts) => {
  const ctx: DicomwebContext = { deps: opts, urls: { publicUrl: opts.config.publicUrl, prefix: app.prefix } };

  // STOW-RS bodies are read as a stream by the route (dicomweb/stow.ts), never buffered here.
  app.addContentTypeParser('multipart/related', (_request, _payload, done) => done(null, undefined));

  app.addHook('onRequest', async (request) => checkUids(request));
  const authenticate = opts.authenticate;
  if (authenticate) app.addHook('onRequest', async (request, reply) => authenticate(request, reply));
  // Responses carry patient data: never stored by shared caches.
  app.addHook('onSend', async (request, reply, payload) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'private, no-store');
    // An answer given before the request body was read (401, 413, 415, …): read a
    // little more of it, then close the connection (see lingerThenClose).
    // (No "Connection: close" header: Node would then close at once, reset included.)
    if (!request.raw.complete) reply.raw.once('finish', () => lingerThenClose(request.raw));
    return payload;
  });

  registerQidoRoutes(app, ctx);
  registerWadoRoutes(app, ctx);
  registerRenderedRoutes(app, ctx);
  registerStowRoutes(app, ctx);
  registerWadoUriRoutes(app, ctx);
  registerDeleteRoutes(app, ctx);
};

export default dicomwebRoutes;

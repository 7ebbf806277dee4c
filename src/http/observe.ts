// What the HTTPS door tells the metrics and the refusal log (issue 14 "Also"): open
// connections, TLS handshakes that fail, requests refused before anyone was
// authenticated (401 without a principal, 429) and STOW-RS requests whose client went
// away mid-body. Hooks only: no route changes, no decision is made here.

import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isTresorError } from '../core/errors.js';
import type { Refusal } from '../core/refusal-log.js';

export interface HttpObserver {
  /** Every open TLS connection of the HTTPS server (+1 on open, -1 on close). */
  connections(delta: 1 | -1): void;
  /** An unauthenticated 401, counted (the token refusal itself is audited by identity). */
  unauthenticated(door: Refusal['via'], reason: string): void;
  /** Counted and audited rate-limited (core/refusal-log.ts). */
  refuse(r: Refusal): void;
}

const via = (request: FastifyRequest): Refusal['via'] => {
  const url = request.url;
  if (url.startsWith('/dicomweb/')) return 'dicomweb';
  if (url.startsWith('/auth/')) return 'auth';
  return 'admin';
};

export function observeHttp(app: FastifyInstance, o: HttpObserver, tls: boolean): void {
  if (tls) {
    const server = app.server as unknown as import('node:tls').Server;
    server.on('secureConnection', (socket: TLSSocket) => {
      o.connections(1);
      socket.once('close', () => o.connections(-1));
    });
    // Failed handshakes: no certificate we like, plaintext on the TLS port, a scanner.
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      o.refuse({ reason: 'tls-handshake', via: 'dicomweb', source: socket?.remoteAddress?.replace(/^::ffff:/, ''), code: err.code ?? 'handshake' });
    });
  }
  app.addHook('onError', async (request, reply, err) => {
    if (request.principal) return;
    if (isTresorError(err) && err.kind === 'unauthenticated' && reply.statusCode !== 429) {
      o.unauthenticated(via(request), err.reason);
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode === 429) o.refuse({ reason: 'rate-limited', via: via(request), source: request.ip });
  });
  // Fastify runs this when the client closed before the answer (request.raw 'close' while aborted).
  app.addHook('onRequestAbort', async (request) => {
    if (request.method === 'POST' && /^\/dicomweb\/studies(\/[^/?]+)?(\?|$)/.test(request.url)) {
      o.refuse({ reason: 'stow-abandoned', via: 'dicomweb', source: request.ip });
    }
  });
}

// Replies for the few DICOMweb outcomes that are not core error kinds (406, 415,
// 413 from the parser, 408, 501). Everything else is thrown as a TresorError and
// rendered by the app's error handler (http/errors.ts), so bodies stay uniform:
// a reason code and a message, never a stack trace, SQL, path or patient data.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { unauthenticated } from '../../core/errors.js';
import type { Principal } from '../../core/principal.js';
import { errorBody } from '../errors.js';

/** The uniform error body of http/errors.ts, for statuses that are not core error kinds. */
export function problem(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(errorBody(code, message));
}

/** The principal set by authentication; a request without one never reaches a handler. */
export function principalOf(request: FastifyRequest): Principal {
  const p = (request as FastifyRequest & { principal?: Principal | null }).principal;
  if (!p) throw unauthenticated('missing-token', 'a bearer token is required');
  return p.source ? p : { ...p, source: request.ip };
}

// The Accept of a request (header, or the `accept` query parameter of PS3.18 §8.3.3.1),
// shared by the route modules: a malformed one is answered 400 here.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { AcceptError, parseAccept, rangeMatches, type MediaRange } from './accept.js';
import { problem } from './errors.js';

/** Parses Accept; answers 400 itself and returns null when it is malformed. */
export function acceptOf(request: FastifyRequest, reply: FastifyReply): MediaRange[] | null {
  try {
    const q = (request.query as Record<string, unknown> | undefined)?.accept;
    return parseAccept(typeof q === 'string' ? q : request.headers.accept);
  } catch (e) {
    if (!(e instanceof AcceptError)) throw e;
    problem(reply, 400, 'bad-accept', e.message);
    return null;
  }
}

// application/dicom+json (or application/json, or any); PS3.18 §10.6.1.3.3.
export function acceptsDicomJson(request: FastifyRequest, reply: FastifyReply): boolean {
  const ranges = acceptOf(request, reply);
  if (!ranges) return false;
  if (ranges.some((r) => rangeMatches(r, 'application', 'dicom+json') || (r.type === 'application' && r.subtype === 'json'))) return true;
  problem(reply, 406, 'not-acceptable', 'Search results are available as application/dicom+json.');
  return false;
}

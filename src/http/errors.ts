// One error body for every HTTP failure (ARCHITECTURE.md rule 4): {error: {code, message}}.
// Core errors map by kind; Fastify's own errors (validation, parsing, limits) by status.
// Nothing internal (stack, SQL, file paths, parser snippets of the body) ever reaches the
// client, and parser messages that may quote the body never reach the log either.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isTresorError, reasonSpec, type ErrorKind, type Reason } from '../core/errors.js';

export interface ErrorBody {
  /** retryAfterSeconds: when a retry may succeed (a locked account), as the Retry-After header says. */
  error: { code: string; message: string; retryAfterSeconds?: number };
}

const STATUS_BY_KIND: Readonly<Record<ErrorKind, number>> = Object.freeze({
  'not-found': 404,
  forbidden: 403,
  invalid: 400,
  conflict: 409,
  unavailable: 503,
  'too-large': 413,
  unauthenticated: 401,
});

const DEFAULT_MESSAGE: Readonly<Record<number, string>> = Object.freeze({
  400: 'the request is not valid',
  401: 'authentication required',
  403: 'not allowed',
  404: 'not found',
  405: 'method not allowed',
  406: 'not acceptable',
  409: 'conflict',
  413: 'the request is too large',
  415: 'unsupported media type',
  429: 'too many requests: slow down',
  500: 'internal error',
  503: 'temporarily unavailable',
});

export const errorBody = (code: string, message: string): ErrorBody => ({ error: { code, message } });

/** Bearer challenge (RFC 6750 §3): `error="invalid_token"` when a token was presented (core/errors.ts REASONS). */
function bearerChallenge(reason: Reason | undefined): string {
  if (reason !== undefined && reasonSpec(reason).invalidToken) {
    return `Bearer realm="tresor", error="invalid_token"`;
  }
  return 'Bearer realm="tresor"';
}

interface Rendered {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
  /** Whether this is our fault (logged as an error) or the client's. */
  internal: boolean;
}

/** Maps any thrown value to a status and a safe body. */
function renderError(err: unknown): Rendered {
  const headers: Record<string, string> = {};
  if (isTresorError(err)) {
    const status = STATUS_BY_KIND[err.kind] ?? 500;
    if (status === 401) headers['www-authenticate'] = bearerChallenge(err.reason);
    if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
    // Core messages are written to be shown (core/errors.ts); the default message of a
    // bare error is its reason, which is replaced by a sentence.
    const message = err.message && err.message !== err.reason ? err.message : (DEFAULT_MESSAGE[status] ?? 'error');
    const body = errorBody(err.reason, message);
    if (err.retryAfterSeconds !== undefined) body.error.retryAfterSeconds = err.retryAfterSeconds;
    return { status, body, headers, internal: status >= 500 && err.kind !== 'unavailable' };
  }
  const fe = err as Partial<FastifyError> & { validation?: unknown; validationContext?: string };
  const status = typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 600 ? fe.statusCode : 500;
  if (fe.validation && status === 400) {
    // Ajv's messages name the field and the rule ("body/username must match pattern ..."),
    // never the value sent.
    return { status, body: errorBody('invalid-request', String(fe.message ?? DEFAULT_MESSAGE[400])), headers, internal: false };
  }
  if (status === 401) headers['www-authenticate'] = bearerChallenge(undefined);
  const code = codeFor(fe.code, status);
  return { status, body: errorBody(code, DEFAULT_MESSAGE[status] ?? (status >= 500 ? 'internal error' : 'the request was refused')), headers, internal: status >= 500 };
}

function codeFor(fastifyCode: string | undefined, status: number): string {
  switch (fastifyCode) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'invalid-json';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'empty-body';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'unsupported-media-type';
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'too-large';
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'invalid-content-length';
    default:
      break;
  }
  if (status === 429) return 'rate-limited';
  if (status === 413) return 'too-large';
  if (status === 415) return 'unsupported-media-type';
  if (status === 404) return 'not-found';
  if (status === 405) return 'method-not-allowed';
  if (status >= 500) return 'internal-error';
  return 'bad-request';
}

export interface ErrorHandlerOptions {
  /**
   * Answers GET/HEAD requests for paths no route has when they belong to the console
   * (client-side routes); null to answer the JSON 404 as for any other path.
   */
  pageFallback?: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> | null;
}

/** Installs the error and not-found handlers on the root instance (children inherit them). */
export function installErrorHandlers(app: FastifyInstance, opts: ErrorHandlerOptions = {}): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const r = renderError(err);
    if (r.internal) {
      request.log.error({ err }, 'request failed');
    } else {
      // Only the code: a JSON parser message can quote the request body (a password).
      request.log.info({ status: r.status, code: r.body.error.code }, 'request refused');
    }
    void reply.code(r.status).headers(r.headers).type('application/json; charset=utf-8').send(r.body);
  });
  app.setNotFoundHandler(async (request, reply) => {
    if ((request.method === 'GET' || request.method === 'HEAD') && opts.pageFallback) {
      const page = opts.pageFallback(request, reply);
      if (page) return page;
    }
    return reply.code(404).type('application/json; charset=utf-8').send(errorBody('not-found', DEFAULT_MESSAGE[404]));
  });
}

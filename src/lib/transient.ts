// The ONE answer to "is this error the database being unreachable or restarting?"
// (issue 11 item 3). Such an error is an outage, not a fault of the request: the
// caller is told to try again (HTTP 503 + Retry-After, DIMSE 0xA700, A-ASSOCIATE-RJ
// transient) instead of getting a 500 or a permanent refusal. Everything else — a
// constraint violation, a syntax error, a bug — is not transient and keeps its meaning.
//
// Framework-free on purpose: it reads only `code`, `name` and `message`, so db/knex.ts
// can use it on pg's and knex's errors without core/ knowing either.

/**
 * PostgreSQL SQLSTATEs (Appendix A of its manual) that mean "the server, not the
 * statement": class 08 connection exception (08000, 08003, 08006, 08001, 08004…),
 * 57P01 admin_shutdown (`pg_ctl stop -m fast` ends every session with it), 57P02
 * crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down, recovering),
 * 53300 too_many_connections.
 */
const TRANSIENT_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * Socket errors of Node's net module while reaching or talking to the server, and name
 * resolution failing (a database container being replaced loses its DNS name meanwhile).
 */
const TRANSIENT_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'ENOTFOUND', 'EAI_AGAIN']);

/** Messages of pg and knex that carry no code (pg's client-side connection ends, knex's pool timeout). */
const TRANSIENT_MESSAGES = [
  /Connection terminated unexpectedly/i,
  /the database system is (starting up|shutting down)/i,
  /Connection terminated due to connection timeout/i,
  /Client has encountered a connection error and is not queryable/i,
  /Client was closed and is not queryable/i,
  /Knex: Timeout acquiring a connection/i,
];

export function isDatabaseUnavailable(e: unknown, depth = 0): boolean {
  if (!(e instanceof Error) || depth > 4) return false;
  const code = (e as Error & { code?: unknown }).code;
  if (typeof code === 'string') {
    if (TRANSIENT_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
    if (TRANSIENT_ERRNOS.has(code)) return true;
  }
  // knex converts tarn's acquire timeout into KnexTimeoutError; its other timeouts
  // (a query's own .timeout()) are the statement's, but knex pool-acquire is the only
  // one we configure.
  if (e.name === 'KnexTimeoutError') return true;
  if (TRANSIENT_MESSAGES.some((re) => re.test(e.message))) return true;
  // An AggregateError (Node's happy-eyeballs connect tries several addresses) or a wrapper.
  const inner = (e as Error & { errors?: unknown[] }).errors;
  if (Array.isArray(inner) && inner.length > 0 && inner.every((x) => isDatabaseUnavailable(x, depth + 1))) return true;
  return e.cause !== undefined && isDatabaseUnavailable(e.cause, depth + 1);
}

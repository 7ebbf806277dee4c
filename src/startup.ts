// Start-up order (issue 10, item 4): the ports are checked before anything is written
// (a port in use must not leave a migrated database and a created admin behind), and
// the database and the blob store are waited for with bounded backoff (a boot-order
// race with PostgreSQL or MinIO must not kill Tresor). Each wait is one log line; the
// give-up is one error with what to do next.

import net from 'node:net';
import type { Logger } from './log.js';
import { isTresorError } from './core/errors.js';
import { isDatabaseUnavailable } from './lib/transient.js';

export class StartupError extends Error {
  override name = 'StartupError';
}

export interface PortToProbe {
  what: string;
  /** The setting that chooses it, named in the message. */
  setting: string;
  host: string;
  port: number;
}

/**
 * Binds each port for a moment and lets it go. Port 0 (any free port, tests) is not probed.
 * A window remains between the probe and the real listen; what it protects against is
 * the usual case, another process (or a second Tresor) already holding the port.
 */
export async function probePorts(ports: readonly PortToProbe[]): Promise<void> {
  for (const p of ports) {
    if (p.port === 0) continue;
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', (e: NodeJS.ErrnoException) => {
        const why = e.code === 'EADDRINUSE' ? 'is in use by another process' : e.code === 'EACCES' ? 'needs privileges this process lacks' : e.code === 'EADDRNOTAVAIL' ? 'is not an address of this host' : `cannot be bound (${e.code ?? e.message})`;
        reject(new StartupError(`${p.what} port ${p.port} on ${p.host} ${why}: stop the other process or choose another port (${p.setting})`));
      });
      s.listen({ host: p.host, port: p.port, exclusive: true }, () => s.close(() => resolve()));
    });
  }
}

/**
 * A failure that waiting can cure: the service is not up (yet). Configuration errors are
 * not. The database's part is the one classifier the running server uses too
 * (src/lib/transient.ts); the blob store says so itself with a TresorError 'unavailable'.
 */
export function isTransient(e: unknown): boolean {
  if (isTresorError(e)) return e.kind === 'unavailable' && e.reason !== 'storage-full';
  return isDatabaseUnavailable(e);
}

/**
 * Runs `fn` until it succeeds, retrying transient failures with exponential backoff
 * (0.5 s doubling up to 10 s) for at most `waitSeconds`; then one StartupError.
 */
export async function withStartupRetry<T>(what: string, waitSeconds: number, logger: Logger, fn: () => Promise<T>, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<T> {
  const deadline = Date.now() + waitSeconds * 1000;
  let delay = 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!isTransient(e)) throw e;
      const reason = oneLine(e);
      if (Date.now() + delay > deadline) {
        throw new StartupError(`${what} did not answer within ${waitSeconds} s (${reason}): check that it runs and the settings point to it, or raise TRESOR_STARTUP_WAIT_SECONDS`);
      }
      logger.warn({ attempt, retryInMs: delay, reason }, `waiting for ${what}`);
      await sleep(delay);
      delay = Math.min(delay * 2, 10_000);
    }
  }
}

function oneLine(e: unknown): string {
  // The driver's own words (connect ECONNREFUSED host:port, the database system is starting
  // up…) tell the operator more than the caller-safe sentence of 'database-unavailable'.
  if (isTresorError(e) && e.reason === 'database-unavailable' && e.cause !== undefined) return oneLine(e.cause);
  const err = e as { code?: unknown; message?: unknown; errors?: { message?: unknown }[] };
  const msg = typeof err?.message === 'string' && err.message ? err.message : Array.isArray(err?.errors) ? String(err.errors[0]?.message ?? '') : String(e);
  return (typeof err?.code === 'string' && !msg.includes(err.code) ? `${err.code} ${msg}` : msg).split('\n')[0].slice(0, 200);
}

// GET /healthz: liveness only — the process answers HTTP. It asks no dependency on
// purpose: an orchestrator restarts a node whose liveness fails, and restarting every
// node because PostgreSQL restarts (or S3 hiccups) helps nobody; Tresor recovers from
// those by itself (issue 11 item 3). GET /readyz: readiness, the database AND the blob
// store answer now — what a load balancer should route by.
// Both public, both answer nothing but ok/unavailable and, for /readyz, the names of
// the failing components (no versions, no counts, no error text).

import type { FastifyInstance } from 'fastify';
import { unavailable } from '../../core/errors.js';

export interface HealthRouteOptions {
  /** Readiness probes by component name, e.g. { database, 'blob-store' }: each throws when not usable. */
  ready?: Record<string, () => Promise<void>>;
}

/** Each probe gets this long; a hung dependency is "failing", not a hung /readyz. */
const PROBE_TIMEOUT_MS = 3_000;
/** Answers are reused this long, so a flood of /readyz costs one probe per component. */
const READY_CACHE_MS = 1_500;

export async function healthRoutes(app: FastifyInstance, opts: HealthRouteOptions): Promise<void> {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        response: {
          200: { type: 'object', additionalProperties: false, required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } },
        },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'no-store');
      return { status: 'ok' as const };
    },
  );

  const probes = Object.entries(opts.ready ?? {});
  let cached: { at: number; failing: Promise<string[]> } | undefined;
  const failingNow = (log: FastifyInstance['log']): Promise<string[]> => {
    if (cached && Date.now() - cached.at < READY_CACHE_MS) return cached.failing;
    const failing = Promise.all(
      probes.map(async ([name, probe]) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            probe(),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`${name} did not answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
            }),
          ]);
          return null;
        } catch (err) {
          log.warn({ err, component: name }, 'readiness probe failed');
          return name;
        } finally {
          clearTimeout(timer);
        }
      }),
    ).then((r) => r.filter((n): n is string => n !== null));
    cached = { at: Date.now(), failing };
    return failing;
  };

  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        response: {
          200: { type: 'object', additionalProperties: false, required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } },
        },
      },
    },
    async (request, reply) => {
      const failing = await failingNow(request.log);
      reply.header('cache-control', 'no-store');
      // Names only: which component, never why (the log has the error).
      if (failing.length > 0) throw unavailable('unhealthy', `not ready: ${failing.join(', ')} not answering; try again shortly`);
      return { status: 'ok' as const };
    },
  );
}

// GET /healthz: liveness and readiness for orchestrators and load balancers. Public,
// answers nothing but ok/unavailable (no versions, no counts, no error text).

import type { FastifyInstance } from 'fastify';
import { unavailable } from '../../core/errors.js';

export interface HealthRouteOptions {
  /** Throws when a dependency (database, blob store) is not usable. */
  check?: () => Promise<void>;
}

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
    async (request, reply) => {
      try {
        await opts.check?.();
      } catch (err) {
        request.log.warn({ err }, 'health check failed');
        throw unavailable('unhealthy', 'a dependency is unavailable');
      }
      reply.header('cache-control', 'no-store');
      return { status: 'ok' as const };
    },
  );
}

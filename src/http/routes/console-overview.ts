// GET /console/api/system and GET /admin/edges: the console's system page and edge list
// (core/console-overview.ts decides who may see them: global admins; anyone else 404).

import type { FastifyInstance } from 'fastify';
import type { ConsoleOverview } from '../../core/console-overview.js';
import { principalOf } from '../auth.js';

export interface ConsoleOverviewRouteOptions {
  overview: ConsoleOverview;
}

const dateTime = { type: 'string', format: 'date-time' } as const;
const int = { type: 'integer' } as const;
const obj = (properties: Record<string, unknown>) => ({ type: 'object', additionalProperties: false, required: Object.keys(properties), properties }) as const;
const health = { type: 'string', enum: ['ok', 'failing'] } as const;

const systemResponse = obj({
  version: { type: 'string' },
  health: obj({ database: health, blobStore: health }),
  counts: obj({ departments: int, users: int, devices: int, studies: int, series: int, instances: int, bytes: int }),
  certificates: obj({
    ca: obj({ notAfter: dateTime }),
    server: obj({ notAfter: dateTime }),
    devices: { type: 'array', items: obj({ aeTitle: { type: 'string' }, notAfter: { type: ['string', 'null'] } }) },
  }),
  disk: obj({ dataDir: { anyOf: [obj({ freeBytes: int, totalBytes: int }), { type: 'null' }] } }),
});

const edgesResponse = obj({
  edges: {
    type: 'array',
    items: obj({
      name: { type: 'string' },
      lastContact: dateTime,
      devices: { type: 'array', items: obj({ aeTitle: { type: 'string' }, lastContact: dateTime, associations: int, source: { type: ['string', 'null'] } }) },
    }),
  },
});

export async function consoleOverviewRoutes(app: FastifyInstance, opts: ConsoleOverviewRouteOptions): Promise<void> {
  app.get('/console/api/system', { schema: { response: { 200: systemResponse } } }, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    return opts.overview.system(principalOf(request));
  });
  app.get('/admin/edges', { schema: { response: { 200: edgesResponse } } }, async (request) => ({ edges: await opts.overview.edges(principalOf(request)) }));
}

// DELETE of a study, series or instance (Tresor's own; PS3.18 defines none). The
// core decides who may (department admins, global admins) and removes rows and
// blobs together (core/delete.ts); 204 on success, the same 404 as any absent UID.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { principalOf } from './errors.js';
import type { DicomwebContext } from './context.js';

export function registerDeleteRoutes(app: FastifyInstance, ctx: DicomwebContext): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as { study: string; series?: string; instance?: string };
    const p = principalOf(request);
    await ctx.deps.deletion.delete(p, { studyUid: params.study, seriesUid: params.series, sopInstanceUid: params.instance }, { via: 'dicomweb' });
    return reply.code(204).send();
  };
  app.delete('/studies/:study', handler);
  app.delete('/studies/:study/series/:series', handler);
  app.delete('/studies/:study/series/:series/instances/:instance', handler);
}

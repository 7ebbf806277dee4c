// GET /admin/backup and GET /admin/backup/blobs/{key} (documented in openapi/openapi.yaml):
// the admin API of `tresor backup`. Thin: the core (core/backup.ts) decides who may and
// audits; here the snapshot's JSON lines are streamed with backpressure, so the database
// snapshot moves at the pace of the client and is never held in memory.

import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { BackupService } from '../../core/backup.js';
import { principalOf } from '../auth.js';

export interface BackupRouteOptions {
  backup: BackupService;
}

const KEY_PATTERN = '^objects/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}$';

export async function backupRoutes(app: FastifyInstance, opts: BackupRouteOptions): Promise<void> {
  app.get('/admin/backup', async (request, reply) => {
    const out = new PassThrough();
    let started = false;
    const gone = () => new Error('the backup client went away');
    const write = async (line: string): Promise<void> => {
      if (!started) {
        // The first line means the core allowed it and audited it: only now is the answer 200.
        started = true;
        void reply.code(200).header('content-type', 'application/x-ndjson').header('cache-control', 'no-store').send(out);
      }
      if (out.destroyed) throw gone();
      if (!out.write(`${line}\n`)) {
        await new Promise<void>((resolve, reject) => {
          const onClose = () => reject(gone());
          out.once('drain', () => {
            out.off('close', onClose);
            resolve();
          });
          out.once('close', onClose);
        });
      }
    };
    try {
      await opts.backup.snapshot(principalOf(request), write);
      out.end();
    } catch (e) {
      if (!started) throw e;
      // Already answering 200: cutting the stream short (no "end" line) fails the backup.
      request.log.error({ err: { message: (e as Error).message } }, 'backup snapshot failed');
      out.destroy(e as Error);
    }
    return reply;
  });

  app.get<{ Params: { '*': string }; Querystring: { backup: string } }>(
    '/admin/backup/blobs/*',
    {
      schema: {
        params: { type: 'object', properties: { '*': { type: 'string', pattern: KEY_PATTERN } }, required: ['*'] },
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['backup'],
          properties: { backup: { type: 'string', pattern: '^[0-9a-f-]{36}$' } },
        },
      },
    },
    async (request, reply) => {
      const body = await opts.backup.blob(principalOf(request), request.query.backup, request.params['*']);
      return reply.header('content-type', 'application/octet-stream').header('cache-control', 'no-store').send(body);
    },
  );
}

// JSON request bodies: Fastify's own parser (prototype poisoning refused, as set in
// app.ts), except that a DELETE with `content-type: application/json` and no body is a
// DELETE without a body, not a 400 `empty-body`: scripts and curl examples often send the
// header on every call (issue 10, item 5). Other methods still need a body when they say so.

import type { FastifyInstance } from 'fastify';

export function acceptEmptyJsonOnDelete(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (request.method === 'DELETE' && (body as string).length === 0) {
      done(null, undefined);
      return;
    }
    json(request, body as string, done);
  });
}

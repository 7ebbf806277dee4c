// Rendered resources (PS3.18 §10.4.1.1.3): an instance or one frame as JPEG or PNG,
// with window, viewport and quality parameters (PS3.18 §8.3.5.1); thumbnails are the
// same rendering fitted into 128 × 128 unless a viewport is given.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid } from '../../core/errors.js';
import { parseFrameList } from '../../core/dicom/pixels/frame-plan.js';
import { parseQuality, parseViewport, parseWindow, type RenderOptions } from '../../core/dicom/pixels/render.js';
import type { DicomwebContext } from './context.js';
import { principalOf, problem } from './errors.js';
import { chooseImageFormat, renderInstanceFrame } from './render-frame.js';
import { acceptOf } from './request-accept.js';
import { retrieval, retrieveRequestOf } from './retrieval.js';

const THUMBNAIL = { width: 128, height: 128 };

export function registerRenderedRoutes(app: FastifyInstance, ctx: DicomwebContext): void {
  const handler = (thumbnail: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as { study: string; series: string; instance: string; frames?: string };
    const q = (request.query ?? {}) as Record<string, string | undefined>;
    let frame = 1;
    if (params.frames !== undefined) {
      const frames = parseFrameList(params.frames);
      if (frames.length !== 1) throw invalid('one-frame', 'One frame is rendered per request.');
      frame = frames[0];
    }
    const opts: RenderOptions = {
      format: 'jpeg',
      quality: parseQuality(q.quality),
      window: parseWindow(q.window),
      viewport: parseViewport(q.viewport) ?? (thumbnail ? THUMBNAIL : undefined),
    };
    const ranges = acceptOf(request, reply);
    if (!ranges) return reply;
    const format = chooseImageFormat(ranges);
    if (!format) return problem(reply, 406, 'not-acceptable', 'Rendered images are available as image/jpeg or image/png.');
    opts.format = format;
    const p = principalOf(request);
    const resource = thumbnail ? 'thumbnail' : 'rendered';
    const image = await retrieval(ctx, p, params, resource, async (r) => {
      const [row] = await r.list(retrieveRequestOf(params), { withMetadata: true });
      r.note({ frame });
      return renderInstanceFrame(ctx.deps.pixels, r, row, frame, opts);
    });
    return reply.code(200).header('content-type', `image/${format}`).send(image);
  };
  const base = '/studies/:study/series/:series/instances/:instance';
  app.get(`${base}/rendered`, handler(false));
  app.get(`${base}/frames/:frames/rendered`, handler(false));
  app.get(`${base}/thumbnail`, handler(true));
  app.get(`${base}/frames/:frames/thumbnail`, handler(true));
}

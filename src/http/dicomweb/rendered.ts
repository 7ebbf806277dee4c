// Rendered resources (PS3.18 §10.4.1.1.3): an instance or one frame as JPEG or PNG,
// with window, viewport and quality parameters (PS3.18 §8.3.5.1); thumbnails are the
// same rendering fitted into 128 × 128 unless a viewport is given.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid, notFound, unavailable } from '../../core/errors.js';
import { readDeflated, readHeaderDict } from '../../core/dicom/pixels/bulkdata.js';
import { deflatedFrame, frameBytes } from '../../core/dicom/pixels/frame-bytes.js';
import { imagePixelModule, parseFrameList, planFrames } from '../../core/dicom/pixels/frame-plan.js';
import { pixelLayout, withOffsetTable } from '../../core/dicom/pixels/layout.js';
import { MAX_RENDER_PIXELS, parseQuality, parseViewport, parseWindow, renderFrame, type RenderOptions } from '../../core/dicom/pixels/render.js';
import { isEncapsulated, TS } from '../../core/dicom/transfer-syntaxes.js';
import type { StoredInstance } from '../../core/retrieve.js';
import { rangeMatches, type MediaRange } from './accept.js';
import { principalOf, problem } from './errors.js';
import type { DicomwebContext } from './routes.js';
import { acceptOf, auditRetrieve, listAudited, storedObject } from './wado.js';

const THUMBNAIL = { width: 128, height: 128 };

/** image/jpeg (the default) or image/png, whichever the client prefers. */
export function chooseImageFormat(ranges: MediaRange[]): 'jpeg' | 'png' | null {
  for (const r of ranges) {
    if (rangeMatches(r, 'image', 'jpeg')) return 'jpeg';
    if (rangeMatches(r, 'image', 'png')) return 'png';
  }
  return null;
}

/** One frame of a stored instance, decoded and encoded as asked. */
export async function renderInstanceFrame(ctx: DicomwebContext, row: StoredInstance, frame: number, opts: RenderOptions): Promise<Buffer> {
  const o = storedObject(ctx, row);
  const m = imagePixelModule(row.metadata);
  if (!row.metadata['7FE00010']) throw notFound('no-pixel-data', 'This instance has no image to render.');
  // Refuse before reading a byte: the frame would be decoded in memory.
  if (m.rows * m.columns > MAX_RENDER_PIXELS) throw unavailable('image-too-large', 'This image is too large to render.');
  if (row.transferSyntaxUid === TS.deflatedExplicitLittle) {
    const dict = await readDeflated(o);
    return renderFrame(dict, deflatedFrame(dict, m, frame), TS.explicitLittle, opts);
  }
  const layout = await withOffsetTable(o, await pixelLayout(o));
  const [plan] = planFrames(layout, m, [frame]);
  const { dict } = await readHeaderDict(o, layout);
  const chunks: Buffer[] = [];
  for await (const f of frameBytes(o, [plan], m)) for await (const c of f.chunks) chunks.push(c);
  // frameBytes hands native frames over in little endian order.
  const ts = isEncapsulated(row.transferSyntaxUid) ? row.transferSyntaxUid : TS.explicitLittle;
  return renderFrame(dict, Buffer.concat(chunks), ts, opts);
}

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
    const [row] = await listAudited(ctx, p, params, resource, true);
    const image = await renderInstanceFrame(ctx, row, frame, opts);
    await auditRetrieve(ctx, p, params, resource, 'success', { frame });
    return reply.code(200).header('content-type', `image/${format}`).send(image);
  };
  const base = '/studies/:study/series/:series/instances/:instance';
  app.get(`${base}/rendered`, handler(false));
  app.get(`${base}/frames/:frames/rendered`, handler(false));
  app.get(`${base}/thumbnail`, handler(true));
  app.get(`${base}/frames/:frames/thumbnail`, handler(true));
}

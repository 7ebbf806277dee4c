// Rendering one frame as JPEG or PNG, for the rendered and thumbnail resources
// (PS3.18 §10.4.1.1.3) and WADO-URI's image/* answers (PS3.18 §9.2).

import { notFound, unavailable } from '../../core/errors.js';
import { imagePixelModule } from '../../core/dicom/pixels/frame-plan.js';
import { MAX_RENDER_PIXELS, type RenderOptions } from '../../core/dicom/pixels/render.js';
import { isEncapsulated, TS } from '../../core/dicom/transfer-syntaxes.js';
import type { StoredInstance } from '../../core/retrieve.js';
import { rangeMatches, type MediaRange } from './accept.js';
import { frameSource } from './frame-source.js';
import { storedObject, type Retrieval } from './retrieval.js';
import type { PixelsLike } from './types.js';

/** image/jpeg (the default) or image/png, whichever the client prefers. */
export function chooseImageFormat(ranges: MediaRange[]): 'jpeg' | 'png' | null {
  for (const r of ranges) {
    if (rangeMatches(r, 'image', 'jpeg')) return 'jpeg';
    if (rangeMatches(r, 'image', 'png')) return 'png';
  }
  return null;
}

/** One frame of a stored instance, decoded and encoded as asked. */
export async function renderInstanceFrame(pixels: PixelsLike, r: Pick<Retrieval, 'open'>, row: StoredInstance, frame: number, opts: RenderOptions): Promise<Buffer> {
  const m = imagePixelModule(row.metadata);
  if (!row.metadata['7FE00010']) throw notFound('no-pixel-data', 'This instance has no image to render.');
  // Refuse before reading a byte: the frame would be decoded in memory.
  if (m.rows * m.columns > MAX_RENDER_PIXELS) throw unavailable('image-too-large', 'This image is too large to render.');
  const src = await frameSource(storedObject(r, row), row, [frame]);
  const dict = await src.header();
  const chunks: Buffer[] = [];
  for await (const f of src.frames()) for await (const c of f.chunks) chunks.push(c);
  // Deflated frames come inflated and native frames in little endian order: explicit VR little endian.
  const ts = isEncapsulated(row.transferSyntaxUid) ? row.transferSyntaxUid : TS.explicitLittle;
  // Decoded in a codec child process, under its limits (pixel-codec.ts).
  return pixels.render(dict, Buffer.concat(chunks), ts, opts);
}

// Rendered images (PS3.18 §8.3.5, §10.4.1.1.3 rendered/thumbnail; WADO-URI image/jpeg):
// the request parameters, and the scaling of the decoded RGBA image. The decoding
// itself (dcmjs-imaging's WebAssembly codecs, jpeg-js, pngjs) runs only in a codec
// child process: codec-jobs.ts, reached through pixel-codec.ts (issue 14, item 1).
//
// dcmjs-imaging works on a dataset in memory. We never hand it the stored object:
// only the attributes before Pixel Data and the bytes of the one frame to render,
// presented as a one-frame dataset, so memory is bounded by the frame, not the object.
// dcmjs-imaging limits found reading it (src/Pixel.js): a multi-frame encapsulated
// dataset must have exactly one fragment per frame; a one-frame dataset concatenates
// all its fragments — which is how we present a frame of any layout.

import { invalid } from '../../errors.js';

export interface RenderOptions {
  format: 'jpeg' | 'png';
  /** JPEG quality 1–100 (PS3.18 §8.3.5.1.2). */
  quality?: number;
  /** Window center and width (PS3.18 §8.3.5.1.3); otherwise the dataset's own or computed. */
  window?: { center: number; width: number };
  /** Fit the image inside this box, keeping its aspect ratio (PS3.18 §8.3.5.1.4). */
  viewport?: { width: number; height: number };
}

/** Largest image we render: 4096 × 4096 (the RGBA output alone is 64 MiB). */
export const MAX_RENDER_PIXELS = 4096 * 4096;
export const MAX_VIEWPORT = 4096;

/**
 * Scales RGBA pixels to fit inside w × h, keeping the aspect ratio: box filter when
 * shrinking (each output pixel averages the source pixels it covers), nearest
 * neighbour when enlarging.
 */
export function fit(src: Buffer, sw: number, sh: number, w: number, h: number): { data: Buffer; width: number; height: number } {
  const scale = Math.min(w / sw, h / sh);
  const dw = Math.max(1, Math.round(sw * scale));
  const dh = Math.max(1, Math.round(sh * scale));
  if (dw === sw && dh === sh) return { data: src, width: sw, height: sh };
  const out = Buffer.alloc(dw * dh * 4);
  for (let y = 0; y < dh; y++) {
    const y0 = Math.floor((y * sh) / dh);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * sh) / dh));
    for (let x = 0; x < dw; x++) {
      const x0 = Math.floor((x * sw) / dw);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * sw) / dw));
      let r = 0, g = 0, b = 0, a = 0;
      for (let yy = y0; yy < y1; yy++) {
        for (let xx = x0; xx < x1; xx++) {
          const i = (yy * sw + xx) * 4;
          r += src[i];
          g += src[i + 1];
          b += src[i + 2];
          a += src[i + 3];
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      const o = (y * dw + x) * 4;
      out[o] = r / n;
      out[o + 1] = g / n;
      out[o + 2] = b / n;
      out[o + 3] = a / n;
    }
  }
  return { data: out, width: dw, height: dh };
}

/** PS3.18 §8.3.5.1.3 window=center,width[,function]; only LINEAR is applied. */
export function parseWindow(v: string | undefined): RenderOptions['window'] {
  if (v === undefined || v === '') return undefined;
  const [c, w, fn] = v.split(',');
  const center = Number(c);
  const width = Number(w);
  if (!Number.isFinite(center) || !Number.isFinite(width) || width <= 0 || (fn !== undefined && !/^linear(-exact)?$/i.test(fn))) {
    throw invalid('bad-window', 'window is center,width[,linear] with a positive width.');
  }
  return { center, width };
}

/** PS3.18 §8.3.5.1.4 viewport=vw,vh[,sx,sy,sw,sh]: the size is honoured, a source region is not supported. */
export function parseViewport(v: string | undefined): RenderOptions['viewport'] {
  if (v === undefined || v === '') return undefined;
  const parts = v.split(',');
  if (parts.length !== 2 || !parts.every((x) => /^\d{1,5}$/.test(x))) throw invalid('bad-viewport', 'viewport is width,height (a source region is not supported).');
  const [width, height] = parts.map(Number);
  if (width < 1 || height < 1 || width > MAX_VIEWPORT || height > MAX_VIEWPORT) throw invalid('bad-viewport', `viewport sides are 1 to ${MAX_VIEWPORT}.`);
  return { width, height };
}

export function parseQuality(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,3}$/.test(v) || Number(v) < 1 || Number(v) > 100) throw invalid('bad-quality', 'quality is 1 to 100.');
  return Number(v);
}

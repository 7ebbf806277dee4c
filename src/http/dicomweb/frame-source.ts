// The frame pipeline WADO-RS frames/bulk data and the rendered resources share
// (PS3.18 §10.4.1.1.3-5): plan every requested frame before the first byte goes out
// (absent frames fail with 404 here, not mid-response), then stream them in order.
// Deflated objects are inflated once; everything else is read from the stored stream.

import { deflatedFrame, frameBytes } from '../../core/dicom/pixels/frame-bytes.js';
import { imagePixelModule, planFrames } from '../../core/dicom/pixels/frame-plan.js';
import { pixelLayout, withOffsetTable } from '../../core/dicom/pixels/layout.js';
import { readDeflated, readHeaderDict } from '../../core/dicom/pixels/bulkdata.js';
import { type StoredObject } from '../../core/dicom/pixels/stream-reader.js';
import { TS } from '../../core/dicom/transfer-syntaxes.js';
import type { StoredInstance } from '../../core/retrieve.js';

export interface FrameSource {
  /** Byte length of each frame, in request order. */
  lengths: number[];
  /** The frames' bytes (native frames in little endian order), one entry per frame. */
  frames(): AsyncGenerator<{ length: number; chunks: AsyncIterable<Buffer> }>;
  /** The data set without pixel data (for rendering: photometric interpretation, LUTs…). */
  header(): Promise<Record<string, any>>;
}

export async function frameSource(o: StoredObject, row: StoredInstance, frames: number[]): Promise<FrameSource> {
  const m = imagePixelModule(row.metadata);
  if (row.transferSyntaxUid === TS.deflatedExplicitLittle) {
    const dict = await readDeflated(o);
    const bufs = frames.map((f) => deflatedFrame(dict, m, f));
    return {
      lengths: bufs.map((b) => b.length),
      async *frames() {
        for (const b of bufs) yield { length: b.length, chunks: (async function* () { yield b; })() };
      },
      header: async () => dict,
    };
  }
  const layout = await withOffsetTable(o, await pixelLayout(o));
  const plans = planFrames(layout, m, frames);
  return {
    lengths: plans.map((pl) => pl.length),
    async *frames() {
      for await (const f of frameBytes(o, plans, m)) yield { length: f.plan.length, chunks: f.chunks };
    },
    header: async () => (await readHeaderDict(o, layout)).dict,
  };
}

// What decoding a stored object may produce: the size its header promises
// (Rows × Columns × Samples per Pixel × Bits Allocated / 8 × Number of Frames, PS3.3
// C.7.6.3, C.7.6.6), checked before any decoder runs and enforced while it runs
// (issue 14, item 1: a small corrupt object must not decode into gigabytes).

import { firstInt, type DicomJson } from '../json.js';

export interface PixelShape {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  numberOfFrames: number;
}

/** Bytes of one decoded frame, and of all of them; NaN-safe (missing values count as 0). */
export function promisedBytes(m: PixelShape): { frame: number; total: number } {
  const n = (x: unknown, d: number) => (Number.isFinite(Number(x)) && Number(x) > 0 ? Math.floor(Number(x)) : d);
  const rows = n(m.rows, 0);
  const columns = n(m.columns, 0);
  // YBR_FULL_422 native stores 2 values per pixel; decoded it has 3 samples: the larger bound.
  const samples = n(m.samplesPerPixel, 1);
  const bits = n(m.bitsAllocated, 0);
  const frames = n(m.numberOfFrames, 1);
  const frame = Math.ceil((rows * columns * samples * bits) / 8);
  // 1-bit frames are packed without padding between them (PS3.5 §8.1.1).
  const total = bits === 1 ? Math.ceil((rows * columns * samples * frames) / 8) : frame * frames;
  return { frame, total };
}

/** The naturalized (dcmjs) attributes as a PixelShape. */
export function shapeOfElements(e: Record<string, unknown>): PixelShape {
  const one = (v: unknown) => (Array.isArray(v) ? v[0] : v);
  return {
    rows: Number(one(e.Rows)),
    columns: Number(one(e.Columns)),
    samplesPerPixel: Number(one(e.SamplesPerPixel) ?? 1),
    bitsAllocated: Number(one(e.BitsAllocated)),
    numberOfFrames: Number(one(e.NumberOfFrames) ?? 1),
  };
}

/** The shape the catalogue recorded at ingest (DICOM JSON), when it has one. */
export function shapeOfMetadata(metadata: DicomJson | undefined): PixelShape | undefined {
  if (!metadata?.['00280010'] || !metadata['7FE00010']) return undefined;
  return {
    rows: firstInt(metadata, '00280010') ?? 0,
    columns: firstInt(metadata, '00280011') ?? 0,
    samplesPerPixel: firstInt(metadata, '00280002') ?? 1,
    bitsAllocated: firstInt(metadata, '00280100') ?? 0,
    numberOfFrames: Math.max(1, firstInt(metadata, '00280008') ?? 1),
  };
}

// Where Pixel Data lies in a stored object, found without holding the object:
// walk.ts (the structural walker ingest already trusts) runs over the stream
// through a forward-only "file handle", reading element headers and discarding
// values. The result is cached per object key: keys are server-generated, never
// reused, and blobs are immutable, so a layout can never go stale.
//
// Cost: finding frame k of a 1 GB object reads the blob up to that frame (sequential
// I/O, constant memory). A ranged read in BlobStore would make it O(frame size).
// Deflated objects (≤ 64 MiB, see parse.ts) have no layout: they are read whole.

import { unavailable } from '../../errors.js';
import { datasetOffsetFromGroupLength, FILE_META_START } from '../part10.js';
import { transferSyntax, TS } from '../transfer-syntaxes.js';
import { walkDataset, type Fragment } from '../walk.js';
import { ForwardReader, readPrefix, readRanges, type StoredObject } from './stream-reader.js';

export interface PixelLayout {
  /** Offset of the Pixel Data element header (end of the attributes before it); size when there is none. */
  headerEnd: number;
  /** Offset of the dataset after the File Meta Information. */
  datasetOffset: number;
  pixel?:
    | { kind: 'native'; valueOffset: number; length: number }
    | { kind: 'encapsulated'; basicOffsetTable?: Fragment; fragments: Fragment[]; botOffsets?: number[] };
}

const LAYOUT_CACHE_SIZE = 1024;
const layoutCache = new Map<string, PixelLayout>();

function cachePut(key: string, l: PixelLayout): void {
  layoutCache.delete(key);
  layoutCache.set(key, l);
  while (layoutCache.size > LAYOUT_CACHE_SIZE) layoutCache.delete(layoutCache.keys().next().value as string);
}

/** Where the File Meta Information ends (PS3.10 §7.1); ingest already validated it. */
async function datasetOffsetOf(o: StoredObject): Promise<number> {
  const offset = datasetOffsetFromGroupLength(await readPrefix(o, FILE_META_START + 12));
  if (offset === undefined) throw unavailable('stored-object-unreadable', 'The stored object is not Part 10.');
  return offset;
}

/** Locates Pixel Data in a stored object (cached per object key). */
export async function pixelLayout(o: StoredObject): Promise<PixelLayout> {
  const cached = layoutCache.get(o.key);
  if (cached) return cached;
  if (o.transferSyntaxUid === TS.deflatedExplicitLittle) throw new Error('pixelLayout: deflated objects are read whole');
  const datasetOffset = await datasetOffsetOf(o);
  const reader = new ForwardReader(await o.open());
  let layout: PixelLayout;
  try {
    const { pixelData } = await walkDataset(reader, o.size, datasetOffset, o.transferSyntaxUid);
    if (!pixelData) layout = { headerEnd: o.size, datasetOffset };
    else if (pixelData.length !== undefined) {
      layout = { headerEnd: pixelData.elementOffset, datasetOffset, pixel: { kind: 'native', valueOffset: pixelData.valueOffset, length: pixelData.length } };
    } else {
      layout = {
        headerEnd: pixelData.elementOffset,
        datasetOffset,
        pixel: { kind: 'encapsulated', basicOffsetTable: pixelData.basicOffsetTable, fragments: pixelData.fragments ?? [] },
      };
    }
  } finally {
    await reader.close();
  }
  cachePut(o.key, layout);
  return layout;
}

/** Reads the Basic Offset Table (when there is one) into the layout, so frames can be grouped. */
export async function withOffsetTable(o: StoredObject, layout: PixelLayout): Promise<PixelLayout> {
  const pixel = layout.pixel;
  if (pixel?.kind !== 'encapsulated' || !pixel.basicOffsetTable || pixel.basicOffsetTable.length === 0) return layout;
  if (pixel.botOffsets) return layout;
  const bot = pixel.basicOffsetTable;
  if (bot.length % 4 !== 0 || bot.length > 4 * 1_000_000) return layout;
  const chunks: Buffer[] = [];
  for await (const c of readRanges(o, [bot])) chunks.push(c.data);
  const b = Buffer.concat(chunks);
  const little = transferSyntax(o.transferSyntaxUid)?.littleEndian ?? true;
  const offsets: number[] = [];
  for (let i = 0; i < b.length; i += 4) offsets.push(little ? b.readUInt32LE(i) : b.readUInt32BE(i));
  const withBot: PixelLayout = { ...layout, pixel: { ...pixel, botOffsets: offsets } };
  cachePut(o.key, withBot);
  return withBot;
}

/** For tests: forget cached layouts. */
export function clearLayoutCache(): void {
  layoutCache.clear();
}

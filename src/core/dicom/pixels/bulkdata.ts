// The attributes before Pixel Data of a stored object, parsed by dcmjs, and the
// bulk data values in them (PS3.18 §10.4 /bulkdata; BulkDataURIs as json.ts writes them).

import dcmjs from '../dcmjs.js';
import { toArrayBuffer } from '../../../lib/array-buffer.js';
import { notFound, unavailable } from '../../errors.js';
import { inflatePart10 } from '../inflate.js';
import { datasetOffsetFromGroupLength } from '../part10.js';
import { TS } from '../transfer-syntaxes.js';
import { pixelLayout, type PixelLayout } from './layout.js';
import { readPrefix, type StoredObject } from './stream-reader.js';

/** The attributes before Pixel Data as a dcmjs dictionary (≤ 64 MiB, see parse.ts). */
export async function readHeaderDict(o: StoredObject, layout?: PixelLayout): Promise<{ dict: Record<string, any>; meta: Record<string, any> }> {
  const whole = o.transferSyntaxUid === TS.deflatedExplicitLittle;
  const end = whole ? o.size : (layout ?? (await pixelLayout(o))).headerEnd;
  let buf = await readPrefix(o, end);
  if (whole) {
    // Inflated off the event loop and bounded in size and parse cost (inflate.ts), also
    // for objects stored before ingest bounded them; dcmjs then reads explicit VR little endian.
    const offset = datasetOffsetFromGroupLength(buf);
    const c = offset === undefined ? ({ ok: false } as const) : await inflatePart10(buf, offset);
    if (!c.ok) throw unavailable('stored-object-unreadable', 'The stored deflated object inflates beyond what the server reads in memory (size or element count), or is damaged; retrieve it as stored (transfer-syntax=*).');
    buf = c.part10;
  }
  try {
    const d = dcmjs.data.DicomMessage.readFile(toArrayBuffer(buf), { ignoreErrors: true } as any);
    if (whole && d.meta['00020010']) d.meta['00020010'].Value = [TS.deflatedExplicitLittle];
    return { dict: d.dict, meta: d.meta };
  } catch {
    throw unavailable('stored-object-unreadable', 'The stored object could not be parsed.');
  }
}

/** Deflated objects (at most 64 MiB, parse.ts): the whole file, parsed by dcmjs, which inflates it. */
export async function readDeflated(o: StoredObject): Promise<Record<string, any>> {
  return (await readHeaderDict(o)).dict;
}

/**
 * Follows a bulk data tag path ("00081140/0/00081150" style, as written by json.ts)
 * into a dcmjs dictionary and returns the binary value.
 */
export function bulkValueAt(dict: Record<string, any>, path: string[]): Buffer {
  let node: Record<string, any> = dict;
  for (let i = 0; i < path.length; i++) {
    const el = node[path[i]];
    if (!el) throw notFound('no-such-bulkdata', 'No such bulk data.');
    if (i === path.length - 1) {
      const vals: unknown[] = Array.isArray(el.Value) ? el.Value : [];
      const bufs = vals.filter((v): v is ArrayBuffer => v instanceof ArrayBuffer).map((v) => Buffer.from(v));
      if (bufs.length === 0) throw notFound('no-such-bulkdata', 'No such bulk data.');
      return Buffer.concat(bufs);
    }
    const item = el.Value?.[Number(path[++i])];
    if (!item || typeof item !== 'object') throw notFound('no-such-bulkdata', 'No such bulk data.');
    node = item;
  }
  throw notFound('no-such-bulkdata', 'No such bulk data.');
}

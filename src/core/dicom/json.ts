// dcmjs's dataset dictionary → DICOM JSON (PS3.18 §F.2) for the metadata we keep
// in the database. Bulk data never goes into the database: binary values larger
// than INLINE_LIMIT become a relative BulkDataURI ("bulkdata/<tag path>") that
// the DICOMweb front door resolves against the instance's URL (PS3.18 §8.7.4).

import { normalizeDicomJson } from './json-normalize.js';
import { BINARY_VRS } from './vr.js';

export type DicomJsonElement = { vr: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string };
export type DicomJson = Record<string, DicomJsonElement>;

export const INLINE_LIMIT = 1024;

/** PostgreSQL text and jsonb refuse U+0000; strings in DICOM may carry NUL padding. */
export function cleanString(s: string): string {
  return s.replace(/\0/g, '').replace(/[\uD800-\uDFFF]/g, '\uFFFD');
}

function cleanValue(v: unknown, depthPath: string[]): unknown {
  if (typeof v === 'string') return cleanString(v);
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (v && typeof v === 'object' && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer)) {
    // Person name object {Alphabetic, Ideographic, Phonetic}, or a sequence item.
    const o = v as Record<string, unknown>;
    if ('Alphabetic' in o || 'Ideographic' in o || 'Phonetic' in o) {
      const pn: Record<string, string> = {};
      for (const k of ['Alphabetic', 'Ideographic', 'Phonetic']) if (typeof o[k] === 'string' && o[k]) pn[k] = cleanString(o[k] as string);
      return pn;
    }
    return toDicomJson(o as Record<string, any>, depthPath);
  }
  return v ?? null;
}

/** Converts a dcmjs `dict` (or a sequence item) into DICOM JSON without bulk data. */
export function toDicomJson(dict: Record<string, any>, path: string[] = []): DicomJson {
  const out: DicomJson = {};
  for (const [tag, el] of Object.entries(dict)) {
    if (!/^[0-9A-Fa-f]{8}$/.test(tag) || !el) continue;
    const key = tag.toUpperCase();
    const vr: string = el.vr ?? 'UN';
    const values: unknown[] = Array.isArray(el.Value) ? el.Value : [];
    if (BINARY_VRS.has(vr)) {
      const buffers = values.filter((x): x is ArrayBuffer => x instanceof ArrayBuffer);
      const total = buffers.reduce((n, b) => n + b.byteLength, 0);
      if (buffers.length === 0) out[key] = { vr };
      else if (total <= INLINE_LIMIT && key !== '7FE00010') {
        out[key] = { vr, InlineBinary: Buffer.concat(buffers.map((b) => Buffer.from(b))).toString('base64') };
      } else out[key] = { vr, BulkDataURI: `bulkdata/${[...path, key].join('/')}` };
      continue;
    }
    if (vr === 'SQ') {
      out[key] = { vr, Value: values.map((item, i) => toDicomJson(item as Record<string, any>, [...path, key, String(i)])) };
      continue;
    }
    const cleaned = values.map((v) => cleanValue(v, [...path, key]));
    out[key] = cleaned.length ? { vr, Value: cleaned } : { vr };
  }
  // The whole data set once, at the top: stored metadata is DICOM JSON as PS3.18 F.2 writes it.
  return path.length ? out : normalizeDicomJson(out);
}

/** First value of an attribute as a string (PN: the Alphabetic group), or undefined. */
export function firstString(ds: DicomJson, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object') return (v as { Alphabetic?: string }).Alphabetic;
  return String(v);
}

export function firstInt(ds: DicomJson, tag: string): number | undefined {
  const v = ds[tag]?.Value?.[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number.parseInt(v, 10) : NaN;
  return Number.isSafeInteger(n) && Math.abs(n) < 2 ** 31 ? n : undefined;
}

/** Keeps only the listed tags. */
export function pick(ds: DicomJson, tags: ReadonlySet<string>): DicomJson {
  const out: DicomJson = {};
  for (const [k, v] of Object.entries(ds)) if (tags.has(k)) out[k] = v;
  return out;
}

// DICOM JSON exactly as PS3.18 Annex F.2 writes it. Ingest stores metadata through
// this pass (json.ts) and the DICOMweb front door runs it again when it reads a row,
// so rows stored before it existed (empty values as [""], AT values as integers) are
// served right without rewriting the table: one pass over JSON already in memory,
// idempotent, cheaper and safer than a data migration over every instance row.
//
//   F.2.2  an attribute object has "vr" and at most one of Value, BulkDataURI, InlineBinary
//   F.2.3  Value types by VR: numbers for DS, FL, FD, IS, SL, SS, UL, US; SV and UV
//          numbers, or strings where beyond 2^53 (F.2.3.1); AT strings of 8 hex digits;
//          PN objects; SQ items; strings otherwise
//   F.2.5  an empty attribute has no Value at all; inside a multi-valued attribute an
//          empty value is null (and only there)
//   F.2.2.1 PN: Alphabetic, Ideographic, Phonetic component groups, each a non-empty string

import type { DicomJson, DicomJsonElement } from './json.js';

const NUMBER_VRS: ReadonlySet<string> = new Set(['DS', 'FL', 'FD', 'IS', 'SL', 'SS', 'UL', 'US']);
const BIG_VRS: ReadonlySet<string> = new Set(['SV', 'UV']);
const PN_GROUPS = ['Alphabetic', 'Ideographic', 'Phonetic'] as const;
const TAG_RE = /^[0-9A-F]{8}$/;

/** One value of a non-sequence element, or null when it is empty or cannot be one of its VR. */
function normValue(vr: string, v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (vr === 'AT') {
    // dcmjs gives the tag as the integer (group << 16 | element); F.2.3 wants "GGGGEEEE".
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v.toString(16).toUpperCase().padStart(8, '0');
    if (typeof v === 'string') {
      const t = v.replace(/[(),\s]/g, '').toUpperCase();
      return TAG_RE.test(t) ? t : null;
    }
    return null;
  }
  if (vr === 'PN') {
    if (typeof v === 'string') {
      // "Alphabetic=Ideographic=Phonetic" (PS3.5 §6.2.1) as stored by a writer that kept the text.
      const parts = v.split('=');
      return normValue('PN', Object.fromEntries(PN_GROUPS.map((g, i) => [g, parts[i] ?? ''])));
    }
    if (typeof v !== 'object' || Array.isArray(v)) return null;
    const pn: Record<string, string> = {};
    for (const g of PN_GROUPS) {
      const s = (v as Record<string, unknown>)[g];
      if (typeof s === 'string' && s !== '') pn[g] = s;
    }
    return Object.keys(pn).length ? pn : null;
  }
  if (NUMBER_VRS.has(vr) || BIG_VRS.has(vr)) {
    if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'string') {
      const t = v.trim();
      if (t === '') return null;
      // A 64-bit integer beyond 2^53 stays a decimal string (F.2.3.1), or it would lose digits.
      if (BIG_VRS.has(vr) && /^[+-]?\d+$/.test(t) && !Number.isSafeInteger(Number(t))) return t;
      const n = Number(t);
      return Number.isFinite(n) ? n : null;
    }
    return null;
  }
  if (typeof v === 'string') return v === '' ? null : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

/** One attribute object per F.2. */
export function normalizeElement(el: DicomJsonElement): DicomJsonElement {
  const vr = typeof el.vr === 'string' && el.vr ? el.vr : 'UN';
  if (typeof el.BulkDataURI === 'string' && el.BulkDataURI !== '') return { vr, BulkDataURI: el.BulkDataURI };
  if (typeof el.InlineBinary === 'string' && el.InlineBinary !== '') return { vr, InlineBinary: el.InlineBinary };
  if (!Array.isArray(el.Value) || el.Value.length === 0) return { vr };
  if (vr === 'SQ') {
    // An empty item is {}; an item is never null.
    return { vr, Value: el.Value.map((item) => (item && typeof item === 'object' && !Array.isArray(item) ? normalizeDicomJson(item as DicomJson) : {})) };
  }
  const values = el.Value.map((v) => normValue(vr, v));
  // A single empty value is an empty attribute (F.2.5); so are values that are all empty
  // only when there is one of them: "A\" keeps [..., null], and "\" keeps [null, null].
  if (values.length === 1 && values[0] === null) return { vr };
  return { vr, Value: values };
}

/** A data set (or a sequence item) per F.2: every attribute object normalized; keys as 8 upper-case hex digits. */
export function normalizeDicomJson(ds: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const [tag, el] of Object.entries(ds ?? {})) {
    if (!el || typeof el !== 'object') continue;
    out[tag.toUpperCase()] = normalizeElement(el);
  }
  return out;
}

/** Whether normalizeElement would give an attribute object equal to `el`, keys in the same order (checked without allocating). */
function isNormal(el: DicomJsonElement): boolean {
  const vr = el.vr;
  if (typeof vr !== 'string' || vr === '' || vr === 'SQ') return false;
  let keys = 0;
  for (const k in el) if (Object.hasOwn(el, k)) keys++;
  if (el.Value === undefined) return keys === 1;
  const values = el.Value;
  if (keys !== 2 || !Array.isArray(values) || values.length === 0) return false;
  if (values.length === 1 && values[0] === null) return false;
  for (const v of values) {
    if (vr !== 'PN' || v === null) {
      if (normValue(vr, v) !== v) return false;
      continue;
    }
    if (typeof v !== 'object' || Array.isArray(v)) return false;
    let last = -1;
    for (const g in v as object) {
      const i = (PN_GROUPS as readonly string[]).indexOf(g);
      const text = (v as Record<string, unknown>)[g];
      if (i <= last || typeof text !== 'string' || text === '') return false;
      last = i;
    }
    if (last < 0) return false;
  }
  return true;
}

/**
 * normalizeDicomJson for a data set the caller owns (a query answer built for this
 * request): normalized in place, and an attribute object that is already as F.2 writes
 * it is kept, not copied (issue 13: every answer of a thousand-instance search was copied
 * whole). Attribute objects are never changed, so they may be shared with other data sets.
 */
export function normalizeOwnDicomJson(ds: DicomJson): DicomJson {
  for (const tag of Object.keys(ds)) {
    const el = ds[tag];
    const upper = tag.toUpperCase();
    if (upper !== tag || !el || typeof el !== 'object') delete ds[tag];
    if (el && typeof el === 'object') ds[upper] = isNormal(el) ? el : normalizeElement(el);
  }
  return ds;
}

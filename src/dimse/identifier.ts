// Query/retrieve identifiers (PS3.4 C.4.1.1.3 / C.4.2.1.4): dcmjs-dimse hands us a
// naturalized dataset; the core speaks DICOM JSON (PS3.18 F.2). Values are
// normalized as PS3.5 §6.2 says (trailing spaces, and leading ones except for
// free text, are not significant); an empty value means "return this key".

import type { DcmDataset } from './protocol/connection.js';
import { nestedDcmjs } from './protocol/dcmjs-internal.js';
import type { DicomJson, QueryLevel } from './services.js';
import type { DicomJsonElement } from '../core/dicom/json.js';
import { BINARY_VRS } from '../core/dicom/vr.js';

const { DicomMetaDictionary } = nestedDcmjs.data;

export const TAG_QUERY_RETRIEVE_LEVEL = '00080052';
export const TAG_SPECIFIC_CHARACTER_SET = '00080005';
export const TAG_RETRIEVE_AE_TITLE = '00080054';
const FREE_TEXT = new Set(['LT', 'ST', 'UT']);

function normalizeValue(vr: string, v: unknown): unknown {
  if (typeof v === 'string') {
    const s = FREE_TEXT.has(vr) ? v.replace(/[\0 ]+$/, '') : v.replace(/\0/g, '').trim();
    return s === '' ? undefined : s;
  }
  if (v && typeof v === 'object' && vr === 'PN') {
    const o = v as Record<string, unknown>;
    const pn: Record<string, string> = {};
    for (const k of ['Alphabetic', 'Ideographic', 'Phonetic']) if (typeof o[k] === 'string' && (o[k] as string).trim()) pn[k] = (o[k] as string).trim();
    return Object.keys(pn).length ? pn : undefined;
  }
  if (v && typeof v === 'object' && vr === 'SQ') return toJson(v as Record<string, { vr: string; Value?: unknown[] }>);
  return v ?? undefined;
}

function toJson(dict: Record<string, { vr: string; Value?: unknown[] }>): DicomJson {
  const out: DicomJson = {};
  for (const [tag, el] of Object.entries(dict)) {
    if (!/^[0-9A-Fa-f]{8}$/.test(tag) || !el) continue;
    const vr = el.vr ?? 'UN';
    if (BINARY_VRS.has(vr)) continue; // no bulk data in identifiers
    const values = (Array.isArray(el.Value) ? el.Value : []).map((v) => normalizeValue(vr, v)).filter((v) => v !== undefined);
    const e: DicomJsonElement = values.length ? { vr, Value: values } : { vr };
    out[tag.toUpperCase()] = e;
  }
  return out;
}

/** The identifier as DICOM JSON, keys upper-case hex. */
export function identifierToJson(ds: DcmDataset | undefined): DicomJson {
  if (!ds) return {};
  return toJson(DicomMetaDictionary.denaturalizeDataset(ds.getElements()));
}

export function queryLevel(id: DicomJson): string | undefined {
  const v = id[TAG_QUERY_RETRIEVE_LEVEL]?.Value?.[0];
  return typeof v === 'string' ? v.toUpperCase() : undefined;
}

/** PS3.4 C.6: Study Root has no PATIENT level. */
export function isLevelAllowed(level: string | undefined, model: 'patient' | 'study'): level is QueryLevel {
  if (level === 'STUDY' || level === 'SERIES' || level === 'IMAGE') return true;
  return level === 'PATIENT' && model === 'patient';
}

export function stringValues(id: DicomJson, tag: string): string[] {
  return (id[tag]?.Value ?? []).flatMap((v) => (typeof v === 'string' ? v.split('\\') : [])).map((s) => s.trim()).filter(Boolean);
}

const nonAscii = (v: unknown): boolean => {
  if (typeof v === 'string') return [...v].some((ch) => ch.charCodeAt(0) > 0x7f);
  if (Array.isArray(v)) return v.some(nonAscii);
  if (v && typeof v === 'object') return Object.values(v).some(nonAscii);
  return false;
};

/**
 * A C-FIND response identifier: exactly the keys that were asked for (PS3.4
 * C.4.1.1.3.2), filled from the match, empty where the match has no value.
 */
export function responseIdentifier(requested: DicomJson, match: DicomJson, level: string, aeTitle: string): { elements: Record<string, unknown>; json: DicomJson } {
  const json: DicomJson = {};
  for (const [tag, el] of Object.entries(requested)) {
    if (tag === TAG_QUERY_RETRIEVE_LEVEL || tag === TAG_SPECIFIC_CHARACTER_SET) continue;
    if (tag === TAG_RETRIEVE_AE_TITLE) {
      json[tag] = { vr: 'AE', Value: [aeTitle] };
      continue;
    }
    const m = match[tag];
    json[tag] = m && m.Value && m.Value.length && !m.BulkDataURI && !m.InlineBinary ? { vr: m.vr || el.vr, Value: m.Value } : { vr: el.vr };
  }
  json[TAG_QUERY_RETRIEVE_LEVEL] = { vr: 'CS', Value: [level] };
  // dcmjs writes strings as UTF-8: say so when it matters (PS3.5 §6.1.2.5.3, ISO_IR 192).
  if (nonAscii(json)) json[TAG_SPECIFIC_CHARACTER_SET] = { vr: 'CS', Value: ['ISO_IR 192'] };
  return { elements: DicomMetaDictionary.naturalizeDataset(json as Record<string, unknown>), json };
}

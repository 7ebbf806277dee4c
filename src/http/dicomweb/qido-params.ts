// QIDO-RS query parameters (PS3.18 §8.3.4) → the core query model (core/query.ts).
//   {attributeID}={value}  attributeID: keyword, 8-hex tag, or a dotted path into a
//                          sequence (PS3.18 §8.3.4.1); value as in C-FIND matching
//   includefield=…         keywords/tags, comma separated or repeated, or "all"
//   fuzzymatching=true|false, limit=n, offset=n
// Values go to the core as strings; the core applies PS3.4 C.2.2.2 matching rules.

import dcmjs from '../../core/dicom/dcmjs.js';
import { invalid } from '../../core/errors.js';
import type { DicomJson, DicomJsonElement } from '../../core/dicom/json.js';
import { vrOf } from '../../core/dicom/query-keys.js';
import { NUMERIC_VRS } from '../../core/dicom/vr.js';
import type { QueryRequest } from '../../core/query.js';
import type { QidoLevel } from './types.js';

const TAG_RE = /^[0-9A-Fa-f]{8}$/;
const RESERVED = new Set(['limit', 'offset', 'fuzzymatching', 'includefield', 'accept', 'charset']);
const MAX_PARAMS = 128;
/** VRs whose character repertoire has no comma (PS3.5 Table 6.2-1), so a comma can only separate values. */
const COMMA_LIST_VRS: ReadonlySet<string> = new Set(['UI', 'CS', 'DA', 'TM', 'DT', 'AS', 'IS', 'DS', ...NUMERIC_VRS]);

/** An attribute ID (keyword or tag) → 8 upper-case hex digits; throws invalid for unknown keywords. */
export function tagOf(id: string): string {
  if (TAG_RE.test(id)) return id.toUpperCase();
  const entry = (dcmjs as any).data.DicomMetaDictionary.nameMap[id];
  const t = typeof entry?.tag === 'string' ? entry.tag.replace(/[(),]/g, '') : '';
  if (!/^[0-9A-F]{8}$/.test(t)) throw invalid('unknown-attribute', 'A query parameter names an attribute that is not known.');
  return t;
}

/** A QIDO-RS request is the core's one query model (core/query.ts). */
export type QidoRequest = QueryRequest;

const one = (v: unknown, name: string): string => {
  if (Array.isArray(v)) throw invalid('repeated-parameter', `The ${name} parameter may be given only once.`);
  return String(v ?? '');
};

function nonNegative(v: string, name: 'limit' | 'offset'): number {
  if (!/^\d{1,9}$/.test(v)) throw invalid(`bad-${name}`, `${name} must be a non-negative integer.`);
  return Number(v);
}

/** Builds the core request; `fixed` are UIDs from the path, which always win over the query string. */
export function qidoRequest(level: QidoLevel, query: Record<string, unknown>, fixed: Record<string, string>): QidoRequest {
  const entries = Object.entries(query ?? {});
  if (entries.length > MAX_PARAMS) throw invalid('too-many-parameters', 'The query has too many parameters.');
  const req: QidoRequest = { level, identifier: {} };
  for (const [name, raw] of entries) {
    const lname = name.toLowerCase();
    if (RESERVED.has(lname)) {
      if (lname === 'limit') req.limit = nonNegative(one(raw, 'limit'), 'limit');
      else if (lname === 'offset') req.offset = nonNegative(one(raw, 'offset'), 'offset');
      else if (lname === 'fuzzymatching') {
        const v = one(raw, 'fuzzymatching').toLowerCase();
        if (v !== 'true' && v !== 'false') throw invalid('bad-fuzzymatching', 'fuzzymatching must be true or false.');
        req.fuzzy = v === 'true';
      } else if (lname === 'includefield') {
        for (const f of (Array.isArray(raw) ? raw : [raw]).flatMap((x) => String(x).split(','))) {
          const t = f.trim();
          if (!t) continue;
          if (t.toLowerCase() === 'all') req.includeAll = true;
          else (req.includeFields ??= []).push(includePath(t));
        }
      }
      continue;
    }
    addMatch(req.identifier, name, one(raw, name));
  }
  for (const [tag, uid] of Object.entries(fixed)) req.identifier[tag] = { vr: 'UI', Value: [uid] };
  if (req.includeFields) req.includeFields = [...new Set(req.includeFields)];
  return req;
}

/** includefield takes top-level attributes; a dotted path includes its sequence. */
function includePath(id: string): string {
  return tagOf(id.split('.')[0]);
}

function addMatch(identifier: DicomJson, attributeId: string, value: string): void {
  const path = attributeId.split('.');
  if (path.length > 3 || path.some((p) => p === '')) throw invalid('bad-attribute-path', 'A sequence path has at most three attributes.');
  let node: DicomJson = identifier;
  for (let i = 0; i < path.length; i++) {
    const tag = tagOf(path[i]);
    if (i === path.length - 1) {
      if (tag in node && node[tag].vr !== 'SQ') throw invalid('repeated-parameter', 'An attribute may be matched only once.');
      node[tag] = element(tag, value);
    } else {
      const existing = node[tag];
      const vr = vrOf(tag);
      if (vr !== 'SQ') throw invalid('bad-attribute-path', 'Only sequences have nested attributes.');
      if (!existing) node[tag] = { vr: 'SQ', Value: [{}] };
      node = (node[tag].Value as DicomJson[])[0];
    }
  }
}

function element(tag: string, value: string): DicomJsonElement {
  const vr = vrOf(tag);
  if (value === '') return { vr };
  if (vr === 'SQ') throw invalid('bad-attribute-path', 'A sequence is matched through its attributes.');
  // PS3.18 §8.3.4.1: a comma-separated value is a list of values, as `\` separates them
  // in a C-FIND identifier. Only where no value can itself hold a comma (PS3.5 Table
  // 6.2-1 character repertoires): for PN, LO, SH and other text a comma is text.
  const v = COMMA_LIST_VRS.has(vr) ? value.replace(/,/g, '\\') : value;
  return { vr, Value: [v] };
}

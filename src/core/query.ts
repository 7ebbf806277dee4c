// C-FIND and QIDO-RS: one query model, one matcher (ARCHITECTURE.md). A request is a
// C-FIND identifier / QIDO query as DICOM JSON; this module turns it into a plan of
// matching conditions (PS3.4 C.2.2.2) that the db layer runs as SQL, restricted to
// the departments of scope(principal, 'read') — the only filter that authorizes —
// and renders each row back as DICOM JSON (PS3.18 §F.2) with the return keys.

import { isEmptyScope, scope } from './access.js';
import type { DicomJson, DicomJsonElement } from './dicom/json.js';
import {
  type ColumnKey,
  type ComputedKey,
  DEFAULT_RETURN_KEYS,
  fuzzyNamePatterns,
  hasWildcard,
  IF_PRESENT,
  isIgnoredKey,
  type KeyLevel,
  KEYS,
  knownLevel,
  LEVEL_RANK,
  parseRange,
  vrOf,
  wildcardToLike,
} from './dicom/query-keys.js';
import { BINARY_VRS, NUMERIC_VRS, SINGLE_VALUED_TEXT_VRS, WILDCARD_VRS } from './dicom/vr.js';
import type { AuditDoor, AuditLog } from './audit.js';
import { invalid, isTresorError, unavailable } from './errors.js';
import type { Principal } from './principal.js';
import { auditedSearches } from './query-audit.js';

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';
export type { DicomJson }; // PS3.18 F.2, declared once in dicom/json.ts

export interface QueryRequest {
  level: QueryLevel;
  identifier: DicomJson;
  /** Person names match case-insensitively and on the start of any component or word. */
  fuzzy?: boolean;
  /** Return every stored attribute of the level (QIDO includefield=all). */
  includeAll?: boolean;
  /** More return keys, as 8 hex digits (QIDO includefield). */
  includeFields?: string[];
  limit?: number;
  offset?: number;
  /**
   * Combined date-time matching of StudyDate with StudyTime (PS3.4 C.2.2.2.5.1), as
   * negotiated by the C-FIND extended negotiation; otherwise they match independently.
   */
  combinedDateTime?: boolean;
}

export interface QueryResult {
  matches: DicomJson[];
  /** More matches exist beyond the limit (or the server's maximum). */
  truncated: boolean;
}

export interface QueryService {
  /** The matching engine itself, unaudited: the doors call `search` / `searchPaged` (core/query-audit.ts). */
  find(p: Principal, req: QueryRequest): Promise<QueryResult>;
  /** One audited request (QIDO-RS). */
  search(p: Principal, req: QueryRequest, door: AuditDoor): Promise<QueryResult>;
  /** One audited request answered page by page (C-FIND); one row when iteration ends. */
  searchPaged(p: Principal, req: QueryRequest, door: AuditDoor, pageSize: number): AsyncGenerator<DicomJson>;
}

// ---- What the db layer runs (QueryRepo); no SQL here, only a description of it. ----

/** Where a JSON attribute is read: studies.attributes, series.attributes, instances.metadata, or the sequence item being matched. */
export type JsonSource = 'study' | 'series' | 'instance' | 'item';

export type Field =
  | { kind: 'column'; column: ColumnKey }
  /** Any value of the attribute (PN: its Alphabetic group) in the DICOM JSON of `source`. */
  | { kind: 'json'; source: JsonSource; tag: string }
  /** The modalities of the study's series (PS3.4 C.6.1.1.3.1: matches if any series matches). */
  | { kind: 'modalities-in-study' }
  /** StudyDate and StudyTime concatenated, for combined date-time range matching. */
  | { kind: 'study-datetime' };

export type Matcher =
  /** Exactly one of the values (single value matching, list of UID matching). */
  | { op: 'equals'; values: string[] }
  /** LIKE patterns with `\` as the escape character (wildcard matching), any of them. */
  | { op: 'like'; patterns: string[]; caseInsensitive: boolean }
  /** Inclusive text range; bounds are normalized fixed-width digits (range matching). */
  | { op: 'range'; from?: string; to?: string }
  /** Numeric equality with any of the values (IS, DS, US, …). */
  | { op: 'number'; values: number[] }
  /** An item of the sequence matches all the conditions (sequence matching, PS3.4 C.2.2.2.6). */
  | { op: 'sequence'; conditions: Condition[] };

/** The field matches when any matcher does; a plan's conditions must all hold. */
export interface Condition {
  field: Field;
  anyOf: Matcher[];
}

export interface QueryPlan {
  level: QueryLevel;
  /** Departments the principal may read: never an empty list (that query is not run). */
  departmentIds: 'all' | readonly number[];
  conditions: readonly Condition[];
  /** The repo returns at most this many rows (the service asks one more than it returns). */
  limit: number;
  offset: number;
  /** IMAGE level: which top-level keys of instances.metadata to load ('all' for includeAll). */
  instanceTags: 'all' | readonly string[];
  /** Load series/instance counts, modalities and SOP classes of each row's study. */
  studyAggregates: boolean;
  /** Load the instance count of each row's series. */
  seriesAggregates: boolean;
}

/**
 * One match. PATIENT: the patient columns of the latest visible study of the patient,
 * its attributes, and patient counts over visible studies. STUDY: the study. SERIES:
 * the series and its study. IMAGE: the instance, its series and its study.
 */
export interface QueryRow {
  columns: Partial<Record<ColumnKey, string | number | null>>;
  studyAttributes?: DicomJson;
  seriesAttributes?: DicomJson;
  instanceMetadata?: DicomJson;
  transferSyntaxUid?: string;
  counts: Partial<Record<'patientStudies' | 'patientSeries' | 'patientInstances' | 'studySeries' | 'studyInstances' | 'seriesInstances', number>>;
  modalities?: string[];
  sopClasses?: string[];
}

export interface QueryRepo {
  find(plan: QueryPlan): Promise<QueryRow[]>;
}

// ---- Limits on what a caller can ask (hardening; generous for real viewers). ----
const MAX_KEYS = 256;
const MAX_VALUES = 1000; // per key: long UID lists are legitimate
const MAX_VALUE_LENGTH = 1024;
const MAX_SEQUENCE_DEPTH = 2;
const TAG_RE = /^[0-9A-F]{8}$/;
const LEVELS: readonly QueryLevel[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];
const LEVEL_OF: Record<QueryLevel, KeyLevel> = { PATIENT: 'patient', STUDY: 'study', SERIES: 'series', IMAGE: 'instance' };

const STUDY_COMPUTED: ReadonlySet<ComputedKey> = new Set([
  'ModalitiesInStudy', 'SOPClassesInStudy', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances',
]);

export function createQueryService(repo: QueryRepo, opts: { maxResults?: number; audit?: Pick<AuditLog, 'record' | 'recordAfter'> } = {}): QueryService {
  const maxResults = opts.maxResults ?? 1000;
  if (!Number.isSafeInteger(maxResults) || maxResults < 1) throw new RangeError('maxResults must be a positive integer');

  const engine = {
    async find(p: Principal, req: QueryRequest): Promise<QueryResult> {
      const level = checkLevel(req?.level);
      const { limit, offset } = paging(req, maxResults);
      const parsed = parseRequest(level, req);

      // Rule 3: deny by default. No readable department → no rows, and no query at all.
      const s = scope(p, 'read');
      if (isEmptyScope(s)) return { matches: [], truncated: false };

      const rows = await run(repo, {
        level,
        departmentIds: s.all ? 'all' : s.departmentIds,
        conditions: parsed.conditions,
        limit: limit + 1,
        offset,
        instanceTags: parsed.instanceTags,
        studyAggregates: parsed.studyAggregates,
        seriesAggregates: parsed.seriesAggregates,
      });
      const truncated = rows.length > limit;
      return { matches: rows.slice(0, limit).map((r) => render(level, r, parsed)), truncated };
    },
  };
  return { find: engine.find, ...auditedSearches(engine.find, opts.audit) };
}

async function run(repo: QueryRepo, plan: QueryPlan): Promise<QueryRow[]> {
  try {
    return await repo.find(plan);
  } catch (e) {
    if (isTresorError(e)) throw e;
    // Driver messages can carry SQL and values: keep them in the cause only (rule 4).
    throw unavailable('query-failed', 'The query could not be run.', e);
  }
}

function checkLevel(level: unknown): QueryLevel {
  if (typeof level === 'string' && (LEVELS as readonly string[]).includes(level)) return level as QueryLevel;
  throw invalid('bad-query-level', 'The query level must be PATIENT, STUDY, SERIES or IMAGE.');
}

function paging(req: QueryRequest, max: number): { limit: number; offset: number } {
  const { limit, offset } = req;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) throw invalid('bad-limit', 'limit must be a positive integer.');
  if (offset !== undefined && (!Number.isSafeInteger(offset) || offset < 0)) throw invalid('bad-offset', 'offset must be a non-negative integer.');
  return { limit: Math.min(limit ?? max, max), offset: offset ?? 0 };
}

// ---- Parsing the identifier into conditions and return keys. ----

interface Parsed {
  conditions: Condition[];
  /** Return keys (besides the level's defaults) with the VR to use when no value is stored. */
  requested: Map<string, string>;
  /** Keys of the level's defaults to return (PS3.18 §10.6.3, with the higher levels' when not in their context). */
  defaults: string[];
  includeAll: boolean;
  /** Every key a row can have without includefield=all, in the order of the answer (render). */
  keyOrder: string[];
  instanceTags: 'all' | string[];
  studyAggregates: boolean;
  seriesAggregates: boolean;
}

/** Whether a key belongs to the query level or one above it (PS3.4 C.4.1.2.1: lower-level keys are not keys of this query). */
function applicable(tag: string, level: QueryLevel): boolean {
  const def = KEYS.get(tag);
  if (def?.onlyAtLevel) return LEVEL_OF[level] === def.level;
  const kl = knownLevel(tag);
  return kl === undefined || LEVEL_RANK[kl] <= LEVEL_RANK[LEVEL_OF[level]];
}

/** Which JSON document holds `tag` at this level (the same for matching and for returning). */
function jsonSourceOf(tag: string, level: QueryLevel): Exclude<JsonSource, 'item'> {
  if (level === 'PATIENT' || level === 'STUDY') return 'study';
  const kl = knownLevel(tag);
  if (kl === 'patient' || kl === 'study') return 'study';
  if (level === 'SERIES' || kl === 'series') return 'series';
  return 'instance';
}

function normTag(raw: string): string {
  const tag = raw.toUpperCase();
  if (!TAG_RE.test(tag)) throw invalid('bad-tag', 'Attribute tags must be 8 hexadecimal digits.');
  return tag;
}

function parseRequest(level: QueryLevel, req: QueryRequest): Parsed {
  const identifier = req.identifier ?? {};
  if (typeof identifier !== 'object' || Array.isArray(identifier)) throw invalid('bad-identifier', 'The identifier must be a DICOM JSON object.');
  const entries = Object.entries(identifier);
  const includeFields = req.includeFields ?? [];
  if (!Array.isArray(includeFields)) throw invalid('bad-includefield', 'includeFields must be a list of tags.');
  if (entries.length + includeFields.length > MAX_KEYS) throw invalid('too-many-keys', 'The query has too many keys.');

  const requested = new Map<string, string>();
  const conditions: Condition[] = [];
  const byTag = new Map<string, { vr: string; values: string[]; el: DicomJsonElement }>();

  for (const [raw, el] of entries) {
    const tag = normTag(raw);
    if (isIgnoredKey(tag) || !applicable(tag, level)) continue;
    if (!el || typeof el !== 'object' || Array.isArray(el)) throw invalid('bad-identifier', 'Each attribute must be a DICOM JSON element.');
    const vr = vrOf(tag, el.vr);
    requested.set(tag, vr);
    if (BINARY_VRS.has(vr) || vr === 'SQ') continue;
    byTag.set(tag, { vr, values: valuesOf(el, vr), el });
  }

  // Combined date-time matching replaces the separate StudyDate and StudyTime matches.
  const date = byTag.get('00080020');
  const time = byTag.get('00080030');
  if (req.combinedDateTime && level !== 'PATIENT' && date?.values.length === 1 && time?.values.length === 1) {
    const d = parseRange('DA', date.values[0]);
    const t = parseRange('TM', time.values[0]);
    conditions.push({
      field: { kind: 'study-datetime' },
      anyOf: [{ op: 'range', from: d.from === undefined ? undefined : d.from + (t.from ?? ''), to: d.to === undefined ? undefined : d.to + (t.to ?? '235959.999999') }],
    });
    byTag.delete('00080020');
    byTag.delete('00080030');
  }

  for (const [tag, { vr, values }] of byTag) {
    const c = condition(tag, vr, values, level, !!req.fuzzy);
    if (c) conditions.push(c);
  }
  for (const [raw, el] of entries) {
    const tag = raw.toUpperCase();
    if (requested.get(tag) !== 'SQ') continue;
    const c = sequenceCondition({ kind: 'json', source: jsonSourceOf(tag, level), tag }, el, !!req.fuzzy, 1);
    if (c) conditions.push(c);
  }

  for (const raw of includeFields) {
    if (typeof raw !== 'string') throw invalid('bad-includefield', 'includeFields must be a list of tags.');
    const tag = normTag(raw);
    if (isIgnoredKey(tag) || !applicable(tag, level) || requested.has(tag)) continue;
    requested.set(tag, vrOf(tag));
  }

  const defaults = [...DEFAULT_RETURN_KEYS[level]];
  // PS3.18 §10.6.3.3: a search for all series (all instances) also returns the study's
  // (and the series') attributes; within one study (series) it does not need to.
  const single = (tag: string) => byTag.get(tag)?.values.length === 1;
  if ((level === 'SERIES' || level === 'IMAGE') && !single('0020000D')) defaults.push(...DEFAULT_RETURN_KEYS.STUDY);
  if (level === 'IMAGE' && !single('0020000E')) defaults.push(...DEFAULT_RETURN_KEYS.SERIES);
  const all = [...new Set([...defaults, ...requested.keys()])];
  const computed = (t: string) => KEYS.get(t)?.computed;

  return {
    conditions,
    requested,
    defaults: [...new Set(defaults)],
    includeAll: !!req.includeAll,
    keyOrder: [...all].sort(tagOrder),
    instanceTags:
      level !== 'IMAGE' ? [] : req.includeAll ? 'all' : all.filter((t) => !computed(t) && jsonSourceOf(t, level) === 'instance'),
    studyAggregates: level === 'STUDY' || all.some((t) => STUDY_COMPUTED.has(computed(t) as ComputedKey)),
    seriesAggregates: level === 'SERIES' || all.some((t) => computed(t) === 'NumberOfSeriesRelatedInstances'),
  };
}

/** The non-empty values of a key as strings (PN: the Alphabetic group), split at `\` where it separates values. */
function valuesOf(el: DicomJsonElement, vr: string): string[] {
  const raw = el.Value;
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('bad-identifier', 'Value must be an array.');
  if (raw.length > MAX_VALUES) throw invalid('too-many-values', 'A key has too many values.');
  const out: string[] = [];
  for (const v of raw) {
    let s: string;
    if (v === null || v === undefined) continue;
    if (typeof v === 'string') s = v;
    else if (typeof v === 'number' && Number.isFinite(v)) s = String(v);
    else if (vr === 'PN' && typeof v === 'object' && !Array.isArray(v)) {
      const a = (v as { Alphabetic?: unknown }).Alphabetic;
      if (a !== undefined && typeof a !== 'string') throw invalid('bad-identifier', 'A person name must be a string.');
      s = a ?? '';
    } else throw invalid('bad-identifier', 'Values must be strings or numbers.');
    // A backslash-separated UID list may be long; each value in it may not.
    if (s.length > MAX_VALUES * 65) throw invalid('value-too-long', 'A key value is too long.');
    if (s.includes('\0')) throw invalid('bad-value', 'A key value contains a NUL character.');
    if (vr === 'PN') s = s.split('=')[0]; // the Alphabetic group of "Alphabetic=Ideographic=Phonetic"
    const parts = SINGLE_VALUED_TEXT_VRS.has(vr) ? [s] : s.split('\\');
    for (const part of parts) {
      const t = part.trim(); // PS3.5 §6.2: padding is not significant
      if (t.length > MAX_VALUE_LENGTH) throw invalid('value-too-long', 'A key value is too long.');
      if (t) out.push(t);
    }
  }
  if (out.length > MAX_VALUES) throw invalid('too-many-values', 'A key has too many values.');
  return out;
}

/** The condition for one matching key, or undefined for universal matching (PS3.4 C.2.2.2.3). */
function condition(tag: string, vr: string, values: string[], level: QueryLevel, fuzzy: boolean, source?: JsonSource): Condition | undefined {
  if (values.length === 0 || values.includes('*')) return undefined; // a lone "*" is universal too
  const def = KEYS.get(tag);
  let field: Field;
  if (source) field = { kind: 'json', source, tag };
  else if (def?.computed === 'ModalitiesInStudy') field = { kind: 'modalities-in-study' };
  else if (def?.computed) return undefined; // counts and the like are return keys only
  else if (def?.column) field = { kind: 'column', column: def.column };
  else field = { kind: 'json', source: jsonSourceOf(tag, level), tag };

  const anyOf: Matcher[] = [];
  const equals: string[] = [];
  const likes: string[] = [];
  const numbers: number[] = [];
  const pnFuzzy = fuzzy && vr === 'PN';
  for (const v of values) {
    if (vr === 'DA' || vr === 'TM' || vr === 'DT') anyOf.push({ op: 'range', ...parseRange(vr, v) });
    else if (NUMERIC_VRS.has(vr)) {
      const n = Number(v);
      if (!Number.isFinite(n)) throw invalid('bad-number', 'A numeric key needs a number.');
      numbers.push(n);
    } else if (pnFuzzy) likes.push(...fuzzyNamePatterns(v));
    else if (WILDCARD_VRS.has(vr) && hasWildcard(v)) likes.push(wildcardToLike(v));
    else equals.push(v);
  }
  if (equals.length) anyOf.push({ op: 'equals', values: [...new Set(equals)] });
  if (likes.length) anyOf.push({ op: 'like', patterns: [...new Set(likes)], caseInsensitive: pnFuzzy });
  if (numbers.length) anyOf.push({ op: 'number', values: [...new Set(numbers)] });
  return { field, anyOf };
}

/**
 * Sequence matching (PS3.4 C.2.2.2.6): the one item of the key holds matching keys;
 * a stored item matches when all of them do. Keys inside the item support single
 * value, wildcard, range, list and nested sequence matching, read from the item's JSON.
 */
function sequenceCondition(field: Field, el: DicomJsonElement, fuzzy: boolean, depth: number): Condition | undefined {
  const items = el.Value ?? [];
  if (!Array.isArray(items)) throw invalid('bad-identifier', 'Value must be an array.');
  if (items.length === 0) return undefined;
  if (items.length > 1) throw invalid('bad-sequence-key', 'A sequence matching key has exactly one item.');
  if (depth > MAX_SEQUENCE_DEPTH) throw invalid('bad-sequence-key', 'Sequence matching keys are nested too deeply.');
  const item = items[0];
  if (!item || typeof item !== 'object' || Array.isArray(item)) throw invalid('bad-identifier', 'A sequence item must be a DICOM JSON object.');
  const conditions: Condition[] = [];
  for (const [raw, sub] of Object.entries(item as Record<string, DicomJsonElement>)) {
    const tag = normTag(raw);
    if (!sub || typeof sub !== 'object' || Array.isArray(sub)) throw invalid('bad-identifier', 'Each attribute must be a DICOM JSON element.');
    const vr = vrOf(tag, sub.vr);
    if (BINARY_VRS.has(vr)) continue;
    const c =
      vr === 'SQ'
        ? sequenceCondition({ kind: 'json', source: 'item', tag }, sub, fuzzy, depth + 1)
        : condition(tag, vr, valuesOf(sub, vr), 'STUDY', fuzzy, 'item');
    if (c) conditions.push(c);
  }
  return conditions.length ? { field, anyOf: [{ op: 'sequence', conditions }] } : undefined;
}

// ---- Rendering a row as DICOM JSON. ----

const isEmptyValue = (v: unknown) => v === '' || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0);
const isBulk = (el: DicomJsonElement) => el.InlineBinary !== undefined || el.BulkDataURI !== undefined;

/** Never bulk data in a query response: binary values become empty, inside sequences too. */
function stripBulk(el: DicomJsonElement): DicomJsonElement {
  if (isBulk(el)) return { vr: el.vr };
  if (el.vr === 'SQ' && Array.isArray(el.Value) && el.Value.length) {
    return { vr: 'SQ', Value: el.Value.map((item) => stripItem(item as DicomJson)) };
  }
  // PS3.18 §F.2.5: an empty value has no Value (parsers give [""] or [{}] for a zero-length element).
  if (!Array.isArray(el.Value) || el.Value.every(isEmptyValue)) return { vr: el.vr };
  return { vr: el.vr, Value: el.Value };
}
function stripItem(item: DicomJson): DicomJson {
  const out: DicomJson = {};
  if (item && typeof item === 'object') for (const [k, v] of Object.entries(item)) if (v && typeof v === 'object') out[k] = stripBulk(v);
  return out;
}

function computedValue(key: ComputedKey, row: QueryRow): unknown[] | undefined {
  const n = (x: number | undefined) => (x === undefined ? undefined : [x]);
  const list = (x: string[] | undefined) => (x && x.length ? [...x].sort() : undefined);
  switch (key) {
    case 'NumberOfPatientRelatedStudies': return n(row.counts.patientStudies);
    case 'NumberOfPatientRelatedSeries': return n(row.counts.patientSeries);
    case 'NumberOfPatientRelatedInstances': return n(row.counts.patientInstances);
    case 'NumberOfStudyRelatedSeries': return n(row.counts.studySeries);
    case 'NumberOfStudyRelatedInstances': return n(row.counts.studyInstances);
    case 'NumberOfSeriesRelatedInstances': return n(row.counts.seriesInstances);
    case 'ModalitiesInStudy': return list(row.modalities);
    case 'SOPClassesInStudy': return list(row.sopClasses);
    case 'AvailableTransferSyntaxUID': return row.transferSyntaxUid ? [row.transferSyntaxUid] : undefined;
    case 'InstanceAvailability': return ['ONLINE']; // everything stored is on line (PS3.4 C.4.23.1.1)
  }
}

function jsonOf(source: Exclude<JsonSource, 'item'>, row: QueryRow): DicomJson | undefined {
  return source === 'study' ? row.studyAttributes : source === 'series' ? row.seriesAttributes : row.instanceMetadata;
}

function valueOf(tag: string, level: QueryLevel, row: QueryRow): DicomJsonElement | undefined {
  const def = KEYS.get(tag);
  if (def?.computed) {
    const v = computedValue(def.computed, row);
    return v ? { vr: def.vr, Value: v } : undefined;
  }
  // The stored JSON first (it keeps e.g. the ideographic groups of a name), then the column.
  const el = jsonOf(jsonSourceOf(tag, level), row)?.[tag];
  const stored = el && typeof el === 'object' ? stripBulk(el) : undefined;
  if (stored?.Value) return stored;
  const col = def?.column ? row.columns[def.column] : undefined;
  if (def && col !== undefined && col !== null && col !== '') {
    return { vr: def.vr, Value: [def.vr === 'PN' ? { Alphabetic: String(col) } : col] };
  }
  return stored && typeof stored.vr === 'string' ? stored : undefined;
}

/** Answers list their attributes in ascending tag order, as DICOM data sets are (PS3.5 §7.1). */
function tagOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function render(level: QueryLevel, row: QueryRow, parsed: Parsed): DicomJson {
  if (!parsed.includeAll) {
    // The keys are known per request: each row is written in tag order, with no sort
    // (issue 13: a thousand instances sorted one by one made most of a /instances' garbage).
    const out: DicomJson = {};
    for (const tag of parsed.keyOrder) {
      const vr = parsed.requested.get(tag);
      const el = valueOf(tag, level, row);
      if (vr !== undefined) out[tag] = el ?? { vr };
      else if (el) out[tag] = el;
      else if (!IF_PRESENT.has(tag)) out[tag] = { vr: vrOf(tag) };
    }
    return out;
  }
  // includefield=all: every stored attribute of the level as well, so the keys vary by row.
  const out: DicomJson = {};
  const source = level === 'PATIENT' || level === 'STUDY' ? row.studyAttributes : level === 'SERIES' ? row.seriesAttributes : row.instanceMetadata;
  for (const [tag, el] of Object.entries(source ?? {})) {
    if (!TAG_RE.test(tag) || !el || typeof el !== 'object' || isBulk(el) || tag.startsWith('7FE0') || isIgnoredKey(tag)) continue;
    if (level === 'PATIENT' && knownLevel(tag) !== 'patient') continue;
    out[tag] = stripBulk(el);
  }
  for (const tag of parsed.defaults) {
    const el = valueOf(tag, level, row);
    if (el) out[tag] = el;
    else if (!IF_PRESENT.has(tag)) out[tag] = { vr: vrOf(tag) };
  }
  // Requested keys are always returned, empty when nothing is stored (PS3.4 C.2.2.1.2).
  for (const [tag, vr] of parsed.requested) out[tag] = valueOf(tag, level, row) ?? { vr };
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => tagOrder(a, b)));
}

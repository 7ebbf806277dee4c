// The query keys Tresor knows by name (PS3.4 C.6.1.1 and C.6.2.1, PS3.18 §10.6.3):
// which level each belongs to, its VR, and whether it is an indexed column or a
// value computed from the hierarchy. Everything else is matched and returned from
// the DICOM JSON kept in studies.attributes / series.attributes / instances.metadata.
// Pure helpers for the matching rules of PS3.4 C.2.2.2 live here too.

import dcmjs from './dcmjs.js';
import { invalid } from '../errors.js';
import { SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS } from './levels.js';
import { ALL_VRS } from './vr.js';

export type KeyLevel = 'patient' | 'study' | 'series' | 'instance';

export const LEVEL_RANK: Record<KeyLevel, number> = { patient: 0, study: 1, series: 2, instance: 3 };

/** Indexed columns, by table alias. The db layer maps each to one fixed SQL identifier. */
export type ColumnKey =
  | 'study.study_uid'
  | 'study.patient_id'
  | 'study.patient_name'
  | 'study.patient_birth_date'
  | 'study.patient_sex'
  | 'study.study_date'
  | 'study.study_time'
  | 'study.accession_number'
  | 'study.study_id'
  | 'study.study_description'
  | 'study.referring_physician_name'
  | 'series.series_uid'
  | 'series.modality'
  | 'series.series_number'
  | 'series.series_description'
  | 'series.series_date'
  | 'series.series_time'
  | 'series.body_part_examined'
  | 'instance.sop_instance_uid'
  | 'instance.sop_class_uid'
  | 'instance.instance_number'
  | 'instance.rows'
  | 'instance.columns'
  | 'instance.number_of_frames';

/** Values derived from the hierarchy rather than stored (PS3.4 C.6.1.1.2-5, "Additional Query/Retrieve Attributes"). */
export type ComputedKey =
  | 'ModalitiesInStudy'
  | 'SOPClassesInStudy'
  | 'NumberOfPatientRelatedStudies'
  | 'NumberOfPatientRelatedSeries'
  | 'NumberOfPatientRelatedInstances'
  | 'NumberOfStudyRelatedSeries'
  | 'NumberOfStudyRelatedInstances'
  | 'NumberOfSeriesRelatedInstances'
  | 'AvailableTransferSyntaxUID'
  | 'InstanceAvailability';

export interface KeyDef {
  tag: string;
  vr: string;
  level: KeyLevel;
  column?: ColumnKey;
  computed?: ComputedKey;
  /** Computed counts of a level only exist at exactly that level (PS3.4 C.6.1.1.2). */
  onlyAtLevel?: boolean;
}

const def = (tag: string, vr: string, level: KeyLevel, extra: Partial<KeyDef> = {}): KeyDef => ({ tag, vr, level, ...extra });

export const KEYS: ReadonlyMap<string, KeyDef> = new Map(
  [
    def('00100010', 'PN', 'patient', { column: 'study.patient_name' }),
    def('00100020', 'LO', 'patient', { column: 'study.patient_id' }),
    def('00100030', 'DA', 'patient', { column: 'study.patient_birth_date' }),
    def('00100040', 'CS', 'patient', { column: 'study.patient_sex' }),
    def('00201200', 'IS', 'patient', { computed: 'NumberOfPatientRelatedStudies', onlyAtLevel: true }),
    def('00201202', 'IS', 'patient', { computed: 'NumberOfPatientRelatedSeries', onlyAtLevel: true }),
    def('00201204', 'IS', 'patient', { computed: 'NumberOfPatientRelatedInstances', onlyAtLevel: true }),

    def('0020000D', 'UI', 'study', { column: 'study.study_uid' }),
    def('00080020', 'DA', 'study', { column: 'study.study_date' }),
    def('00080030', 'TM', 'study', { column: 'study.study_time' }),
    def('00080050', 'SH', 'study', { column: 'study.accession_number' }),
    def('00200010', 'SH', 'study', { column: 'study.study_id' }),
    def('00081030', 'LO', 'study', { column: 'study.study_description' }),
    def('00080090', 'PN', 'study', { column: 'study.referring_physician_name' }),
    def('00080061', 'CS', 'study', { computed: 'ModalitiesInStudy' }),
    def('00080062', 'UI', 'study', { computed: 'SOPClassesInStudy' }),
    def('00201206', 'IS', 'study', { computed: 'NumberOfStudyRelatedSeries' }),
    def('00201208', 'IS', 'study', { computed: 'NumberOfStudyRelatedInstances' }),
    def('00080056', 'CS', 'study', { computed: 'InstanceAvailability' }),
    def('00080201', 'SH', 'study'),

    def('0020000E', 'UI', 'series', { column: 'series.series_uid' }),
    def('00080060', 'CS', 'series', { column: 'series.modality' }),
    def('00200011', 'IS', 'series', { column: 'series.series_number' }),
    def('0008103E', 'LO', 'series', { column: 'series.series_description' }),
    def('00080021', 'DA', 'series', { column: 'series.series_date' }),
    def('00080031', 'TM', 'series', { column: 'series.series_time' }),
    def('00180015', 'CS', 'series', { column: 'series.body_part_examined' }),
    def('00201209', 'IS', 'series', { computed: 'NumberOfSeriesRelatedInstances' }),
    def('00400244', 'DA', 'series'),
    def('00400245', 'TM', 'series'),
    def('00400275', 'SQ', 'series'),

    def('00080018', 'UI', 'instance', { column: 'instance.sop_instance_uid' }),
    def('00080016', 'UI', 'instance', { column: 'instance.sop_class_uid' }),
    def('00200013', 'IS', 'instance', { column: 'instance.instance_number' }),
    def('00280010', 'US', 'instance', { column: 'instance.rows' }),
    def('00280011', 'US', 'instance', { column: 'instance.columns' }),
    def('00280008', 'IS', 'instance', { column: 'instance.number_of_frames' }),
    def('00280100', 'US', 'instance'),
    def('00083002', 'UI', 'instance', { computed: 'AvailableTransferSyntaxUID' }),
  ].map((d) => [d.tag, d]),
);

/**
 * Where a key lives in the hierarchy: our table, else the level ingest copies it to
 * (levels.ts), else unknown (an instance attribute, or a private or rare one).
 */
export function knownLevel(tag: string): KeyLevel | undefined {
  const k = KEYS.get(tag);
  if (k) return k.level;
  if (STUDY_LEVEL_TAGS.has(tag)) return tag.startsWith('0010') ? 'patient' : 'study';
  if (SERIES_LEVEL_TAGS.has(tag)) return 'series';
  return undefined;
}

// PS3.18 Tables 10.6.3-3, -4, -5: attributes returned without being asked for.
// RetrieveURL is added by the front door. Tags in IF_PRESENT are left out when empty:
// they are the tables' Type C rows, "Shall be present if known" (Specific Character
// Set, Instance Availability, Timezone Offset From UTC, Series Description, Rows,
// Columns, Bits Allocated, Number of Frames, the Performed Procedure Step and Request
// Attributes keys). Type R rows (PS3.4 C.2.2.1 Required Keys) stay, zero-length when
// unknown, which DICOM JSON writes as an element without "Value" (PS3.18 F.2.5).
// ModalitiesInStudy is the one deliberate exception, made by the QIDO front door (qido.ts).
export const DEFAULT_RETURN_KEYS: Record<'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE', readonly string[]> = {
  PATIENT: ['00100010', '00100020', '00100030', '00100040', '00201200', '00201202', '00201204'],
  STUDY: [
    '00080020', '00080030', '00080050', '00080056', '00080061', '00080090', '00080201', '00100010', '00100020',
    '00100030', '00100040', '0020000D', '00200010', '00201206', '00201208',
  ],
  // StudyInstanceUID is not in Table 10.6.3-4 but every caller needs it to address the series.
  SERIES: ['00080060', '00080201', '0008103E', '0020000D', '0020000E', '00200011', '00201209', '00400244', '00400245', '00400275'],
  IMAGE: ['00080016', '00080018', '00080056', '00080201', '0020000D', '0020000E', '00200013', '00280008', '00280010', '00280011', '00280100'],
};
export const IF_PRESENT: ReadonlySet<string> = new Set([
  '00080005', '00080056', '00080201', '0008103E', '00280008', '00280010', '00280011', '00280100', '00400244', '00400245', '00400275',
]);

/** Keys a query carries that are about the query itself, not a matching or return key. */
export function isIgnoredKey(tag: string): boolean {
  return (
    tag.startsWith('0002') || // File Meta Information
    tag.endsWith('0000') || // group lengths
    tag === '00080052' || // QueryRetrieveLevel: the level is given separately
    tag === '00080005' || // SpecificCharacterSet: JSON strings are already Unicode
    tag === '00081190' || // RetrieveURL: the front door's
    tag === '00080054' // RetrieveAETitle: the front door's
  );
}


/** The VR of a tag: ours, then the standard dictionary, then the caller's (private tags), else UN. */
export function vrOf(tag: string, given?: unknown): string {
  const k = KEYS.get(tag);
  if (k) return k.vr;
  const entry = (dcmjs as any).data?.DicomMetaDictionary?.dictionary?.[`(${tag.slice(0, 4)},${tag.slice(4)})`];
  const vr = typeof entry?.vr === 'string' ? entry.vr.slice(0, 2) : ''; // "US or SS" → US
  if (ALL_VRS.has(vr)) return vr;
  return typeof given === 'string' && ALL_VRS.has(given) ? given : 'UN';
}

/** True when a string value asks for wildcard matching (PS3.4 C.2.2.2.4). */
export const hasWildcard = (v: string): boolean => v.includes('*') || v.includes('?');

/**
 * Translates a DICOM wildcard value to a SQL LIKE pattern whose escape character is
 * a backslash: `*` → `%`, `?` → `_`, and the LIKE metacharacters `%`, `_` and `\`
 * in the value itself are escaped so that they only ever match themselves.
 */
export function wildcardToLike(v: string): string {
  let out = '';
  for (const ch of v) {
    if (ch === '*') out += '%';
    else if (ch === '?') out += '_';
    else if (ch === '%' || ch === '_' || ch === '\\') out += `\\${ch}`;
    else out += ch;
  }
  return out;
}

/** A literal (no wildcards) as a LIKE pattern that matches exactly itself. */
export const literalToLike = (v: string): string => v.replace(/[%_\\]/g, (c) => `\\${c}`);

/**
 * LIKE patterns for person-name fuzzy matching (DICOMweb fuzzymatching, PS3.18
 * §8.3.4.1): case-insensitive (the caller uses ILIKE) and matching the start of any
 * name component or word, so "joh" matches "Smith^John" and "Smith^Jo Ann".
 */
export function fuzzyNamePatterns(v: string): string[] {
  const p = wildcardToLike(v);
  return [`${p}%`, `%^${p}%`, `% ${p}%`];
}

export interface TextRange {
  from?: string;
  to?: string;
}

const DA_RE = /^\d{8}$/;
const TM_RE = /^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$/;
const DT_RE = /^(\d{4}(\d{2}){0,5}|\d{14}\.\d{1,6})$/;

function normDate(s: string): string {
  const v = s.replace(/\./g, ''); // ACR-NEMA YYYY.MM.DD
  if (!DA_RE.test(v)) throw invalid('bad-date', 'A date must be YYYYMMDD.');
  return v;
}

function normTime(s: string, high: boolean): string {
  const v = s.replace(/:/g, ''); // ACR-NEMA HH:MM:SS
  if (!TM_RE.test(v)) throw invalid('bad-time', 'A time must be HH[MM[SS[.F{1,6}]]].');
  // Stored times are text HHMMSS[.ffffff]: a bound of lower precision covers its whole
  // interval (PS3.4 C.2.2.2.5: "1000" as an upper bound includes 10:00:59.999999).
  if (!high) return v;
  const full = v.length >= 6 ? v : v + '5959'.slice(v.length - 2);
  return full.includes('.') ? full.padEnd(13, '9') : `${full}.999999`;
}

function normDateTime(s: string, high: boolean): string {
  const v = s.replace(/[+-](0\d|1[0-4])[0-5]\d$/, ''); // a UTC offset is ignored: no timezone adjustment
  if (!DT_RE.test(v)) throw invalid('bad-datetime', 'A date-time must be YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]].');
  if (!high) return v;
  const [whole, frac] = v.split('.');
  const upper = whole + '1231235959'.slice(whole.length - 4);
  return `${upper}.${(frac ?? '').padEnd(6, '9')}`;
}

/** Normalizes one bound of a DA/TM/DT range; `high` widens a coarse upper bound to its end. */
export function normBound(vr: string, s: string, high: boolean): string {
  if (vr === 'DA') return normDate(s);
  if (vr === 'TM') return normTime(s, high);
  return normDateTime(s, high);
}

// A UTC offset is &ZZXX with ZZ ≤ 14 (PS3.5 Table 6.2-1), which tells "2020-2021" (a range) from "2020-0500".
const DT_PART = String.raw`\d{4}(?:\d{2}){0,5}(?:\.\d{1,6})?(?:[+-](?:0\d|1[0-4])[0-5]\d)?`;
const DT_SINGLE_RE = new RegExp(`^${DT_PART}$`);
const DT_RANGE_RE = new RegExp(`^(${DT_PART})?-(${DT_PART})?$`);

/**
 * Range matching (PS3.4 C.2.2.2.5) for DA, TM and DT: `A-B`, `-B`, `A-`, or a single
 * value (a TM or DT single value matches its whole interval, a DA single value that day).
 * Bounds are comparable as text because stored values are fixed-width digits.
 */
export function parseRange(vr: string, value: string): TextRange {
  let a: string;
  let b: string;
  if (vr === 'DT') {
    // A '-' may also start a UTC offset: a value that is one whole DT is a single value.
    if (DT_SINGLE_RE.test(value)) return { from: normBound(vr, value, false), to: normBound(vr, value, true) };
    const m = DT_RANGE_RE.exec(value);
    if (!m) throw invalid('bad-datetime', 'A date-time must be YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]] or a range of them.');
    [a, b] = [m[1] ?? '', m[2] ?? ''];
  } else {
    const dash = value.indexOf('-');
    if (dash < 0) return { from: normBound(vr, value, false), to: normBound(vr, value, true) };
    [a, b] = [value.slice(0, dash).trim(), value.slice(dash + 1).trim()];
  }
  if (!a && !b) throw invalid('bad-range', 'A range needs at least one bound.');
  return { from: a ? normBound(vr, a, false) : undefined, to: b ? normBound(vr, b, true) : undefined };
}

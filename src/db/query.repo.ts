// SQL for C-FIND / QIDO-RS (core/query.ts builds the plan). Every value reaches the
// database as a bound parameter; the only text spliced into SQL is fixed here: column
// names from COLUMN_SQL, table aliases, and placeholders. Wildcard values arrive as
// LIKE patterns already escaped for the `\` escape character declared in each LIKE.
// Every query is restricted to the plan's departments (scope(principal, 'read')).

import type { ColumnKey } from '../core/dicom/query-keys.js';
import type { Condition, DicomJson, Field, Matcher, QueryPlan, QueryRepo, QueryRow } from '../core/query.js';
import type { Db } from './knex.js';
import { QIDO_INSTANCE_TAGS } from './read-columns.js';

type Sql = { sql: string; bindings: unknown[] };

const COLUMN_SQL: Record<ColumnKey, string> = {
  'study.study_uid': 'st.study_uid',
  'study.patient_id': 'st.patient_id',
  'study.patient_name': 'st.patient_name',
  'study.patient_birth_date': 'st.patient_birth_date',
  'study.patient_sex': 'st.patient_sex',
  'study.study_date': 'st.study_date',
  'study.study_time': 'st.study_time',
  'study.accession_number': 'st.accession_number',
  'study.study_id': 'st.study_id',
  'study.study_description': 'st.study_description',
  'study.referring_physician_name': 'st.referring_physician_name',
  'series.series_uid': 'se.series_uid',
  'series.modality': 'se.modality',
  'series.series_number': 'se.series_number',
  'series.series_description': 'se.series_description',
  'series.series_date': 'se.series_date',
  'series.series_time': 'se.series_time',
  'series.body_part_examined': 'se.body_part_examined',
  'instance.sop_instance_uid': 'i.sop_instance_uid',
  'instance.sop_class_uid': 'i.sop_class_uid',
  'instance.instance_number': 'i.instance_number',
  'instance.rows': 'i.rows',
  'instance.columns': 'i.columns',
  'instance.number_of_frames': 'i.number_of_frames',
};
const COLUMNS = Object.keys(COLUMN_SQL) as ColumnKey[];
const STUDY_COLUMNS = COLUMNS.filter((c) => c.startsWith('study.'));
const SERIES_COLUMNS = COLUMNS.filter((c) => c.startsWith('series.'));
const INSTANCE_COLUMNS = COLUMNS.filter((c) => c.startsWith('instance.'));
const PATIENT_COLUMNS: ColumnKey[] = ['study.patient_id', 'study.patient_name', 'study.patient_birth_date', 'study.patient_sex'];
/** Result alias of a column: "st.patient_name" → "st__patient_name". */
const ALIAS = Object.fromEntries(COLUMNS.map((c) => [c, COLUMN_SQL[c].replace('.', '__')])) as Record<ColumnKey, string>;
const alias = (c: ColumnKey) => ALIAS[c];
const selectColumns = (cols: ColumnKey[]) => cols.map((c) => `${COLUMN_SQL[c]} AS ${alias(c)}`).join(', ');

const TAG_RE = /^[0-9A-F]{8}$/;
const JSON_SOURCE_SQL = { study: 'st.attributes', series: 'se.attributes', instance: 'i.metadata' } as const;
/** The text of one JSON value: a person name's Alphabetic group, else the scalar as text. */
const elementText = (v: string) => `(CASE WHEN jsonb_typeof(${v}) = 'object' THEN ${v}->>'Alphabetic' ELSE ${v} #>> '{}' END)`;
const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

class Compiler {
  private n = 0;

  conditions(conds: readonly Condition[], item?: string): Sql {
    const parts = conds.map((c) => this.condition(c, item));
    if (parts.length === 0) return { sql: 'TRUE', bindings: [] };
    return { sql: parts.map((p) => `(${p.sql})`).join(' AND '), bindings: parts.flatMap((p) => p.bindings) };
  }

  private condition(c: Condition, item?: string): Sql {
    const f = c.field;
    switch (f.kind) {
      case 'column':
        if (!(f.column in COLUMN_SQL)) throw new Error('unknown column');
        return this.anyOf(c.anyOf, COLUMN_SQL[f.column]);
      case 'study-datetime':
        return this.anyOf(c.anyOf, `(COALESCE(st.study_date, '') || COALESCE(st.study_time, ''))`);
      case 'modalities-in-study': {
        // PS3.4 C.6.1.1.3.1: a study matches when any of its series' modalities does.
        // Plain values: the study's own list (studies.modalities, migration 006).
        const values = c.anyOf.every((m) => m.op === 'equals') ? c.anyOf.flatMap((m) => (m.op === 'equals' ? m.values : [])) : undefined;
        if (values?.length) return { sql: `st.modalities && ARRAY[${placeholders(values.length)}]::text[]`, bindings: values };
        const m = this.anyOf(c.anyOf, 'sm.modality');
        return { sql: `EXISTS (SELECT 1 FROM series sm WHERE sm.study_id = st.id AND ${m.sql})`, bindings: m.bindings };
      }
      case 'json':
        return this.json(f, c.anyOf, item);
    }
  }

  /** Any value of a JSON attribute matches (multi-valued attributes match on any value). */
  private json(f: Extract<Field, { kind: 'json' }>, anyOf: Matcher[], item?: string): Sql {
    if (!TAG_RE.test(f.tag)) throw new Error('bad tag');
    const src = f.source === 'item' ? item : JSON_SOURCE_SQL[f.source];
    if (!src) throw new Error('item source outside a sequence');
    const e = `e${this.n++}`;
    const m = this.anyOf(anyOf, elementText(`${e}.v`), `${e}.v`);
    // The jsonpath is a bound parameter too (the tag is 8 hex digits anyway). Lax mode:
    // a missing attribute or Value yields no rows instead of an error.
    return {
      sql: `EXISTS (SELECT 1 FROM jsonb_path_query(${src}, CAST(? AS jsonpath)) AS ${e}(v) WHERE ${m.sql})`,
      bindings: [`$."${f.tag}".Value[*]`, ...m.bindings],
    };
  }

  /** `text` is the value as text; `json` the jsonb value when matching inside DICOM JSON. */
  private anyOf(matchers: Matcher[], text: string, json?: string): Sql {
    const parts = matchers.map((m) => this.matcher(m, text, json));
    if (parts.length === 0) return { sql: 'TRUE', bindings: [] };
    return { sql: `(${parts.map((p) => `(${p.sql})`).join(' OR ')})`, bindings: parts.flatMap((p) => p.bindings) };
  }

  private matcher(m: Matcher, text: string, json?: string): Sql {
    switch (m.op) {
      case 'equals':
        if (m.values.length === 0) return { sql: 'FALSE', bindings: [] };
        return m.values.length === 1
          ? { sql: `${text} = ?`, bindings: [m.values[0]] }
          : { sql: `${text} IN (${placeholders(m.values.length)})`, bindings: [...m.values] };
      case 'like': {
        if (m.patterns.length === 0) return { sql: 'FALSE', bindings: [] };
        const op = m.caseInsensitive ? 'ILIKE' : 'LIKE';
        if (!m.caseInsensitive && REVERSED_INDEX.has(text)) {
          // "*SON": a leading wildcard cannot use an index on the name, but "NOS*" on the
          // reversed name can (studies_patient_name_reverse_index, migration 006).
          const parts = m.patterns.map((p) => {
            const r = reversedLike(p);
            return r === undefined ? { sql: `${text} LIKE ? ESCAPE E'\\\\'`, bindings: [p] } : { sql: `reverse(${text}) LIKE ? ESCAPE E'\\\\'`, bindings: [r] };
          });
          return { sql: parts.map((p) => p.sql).join(' OR '), bindings: parts.flatMap((p) => p.bindings) };
        }
        // E'\\' is one backslash whatever standard_conforming_strings says.
        return { sql: m.patterns.map(() => `${text} ${op} ? ESCAPE E'\\\\'`).join(' OR '), bindings: [...m.patterns] };
      }
      case 'range': {
        // An empty stored value ('' sorts before every bound) is no date or time at all.
        const parts: string[] = [`${text} <> ''`];
        const bindings: unknown[] = [];
        if (m.from !== undefined) {
          parts.push(`${text} >= ?`);
          bindings.push(m.from);
        }
        if (m.to !== undefined) {
          parts.push(`${text} <= ?`);
          bindings.push(m.to);
        }
        return { sql: parts.join(' AND '), bindings };
      }
      case 'number': {
        if (m.values.length === 0) return { sql: 'FALSE', bindings: [] };
        const nums = m.values.map((v) => String(v));
        if (json === undefined) return { sql: `${text} IN (${nums.map(() => 'CAST(? AS numeric)').join(', ')})`, bindings: nums };
        // PS3.18 F.2.3: IS and DS are JSON numbers, but some writers store them as strings.
        return {
          sql: nums.map(() => `${json} = to_jsonb(CAST(? AS numeric)) OR ${text} = ?`).join(' OR '),
          bindings: nums.flatMap((v) => [v, v]),
        };
      }
      case 'sequence': {
        if (json === undefined) return { sql: 'FALSE', bindings: [] };
        return this.conditions(m.conditions, json);
      }
    }
  }
}

/** Columns with an index on reverse(column) text_pattern_ops. */
const REVERSED_INDEX = new Set(['st.patient_name']);

/**
 * "%literal" (a leading wildcard and no other) as the pattern that matches the reversed
 * text: "laretil%"; undefined for any other pattern. Escapes (`\`) are kept with the
 * character they escape.
 */
export function reversedLike(pattern: string): string | undefined {
  if (!pattern.startsWith('%')) return undefined;
  const chars: string[] = [];
  const rest = [...pattern.slice(1)];
  for (let k = 0; k < rest.length; k++) {
    const c = rest[k];
    if (c === '%' || c === '_') return undefined;
    if (c === '\\') {
      if (k + 1 >= rest.length) return undefined;
      chars.push(c + rest[++k]);
    } else chars.push(c);
  }
  if (chars.length === 0) return undefined;
  return chars.reverse().join('') + '%';
}

/** scope(principal, 'read') as a condition on `<a>.department_id`. */
function scopeSql(plan: QueryPlan, a: string): Sql {
  if (plan.departmentIds === 'all') return { sql: 'TRUE', bindings: [] };
  const ids = plan.departmentIds.map((d) => Number(d));
  if (ids.length === 0 || !ids.every(Number.isSafeInteger)) return { sql: 'FALSE', bindings: [] };
  return { sql: `${a}.department_id IN (${placeholders(ids.length)})`, bindings: ids };
}

const num = (v: unknown): number => Number(v ?? 0);
const json = (v: unknown): DicomJson => (typeof v === 'string' ? JSON.parse(v) : ((v ?? {}) as DicomJson));
const textArray = (v: unknown): string[] => {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string' && x !== '');
  // A driver that does not parse text[]: "{CT,MR}" (our values are modalities and UIDs: no quotes or commas).
  if (typeof v === 'string' && v.startsWith('{')) return v.slice(1, -1).split(',').map((s) => s.replace(/^"|"$/g, '')).filter(Boolean);
  return [];
};
function columnsOf(r: Record<string, unknown>, cols: ColumnKey[], out: QueryRow['columns'] = {}): QueryRow['columns'] {
  for (const c of cols) {
    const v = r[alias(c)];
    out[c] = v === null || v === undefined ? null : typeof v === 'number' || typeof v === 'string' ? v : String(v);
  }
  return out;
}

export function createQueryRepo(db: Db): QueryRepo {
  const rows = async (q: Sql): Promise<Record<string, unknown>[]> => (await db.raw(q.sql, q.bindings as any[])).rows;

  async function patients(plan: QueryPlan): Promise<QueryRow[]> {
    const where = new Compiler().conditions(plan.conditions);
    const s = scopeSql(plan, 'st');
    const s3 = scopeSql(plan, 's3');
    // Patients are derived from visible studies, grouped by (PatientID, PatientName).
    // The page of patients is chosen first; their attributes come from the latest visible
    // study and their counts from all visible studies (not only the matching ones).
    const samePatient = (a: string) => `COALESCE(${a}.patient_id, '') = m.pid AND COALESCE(${a}.patient_name, '') = m.pname`;
    const r = await rows({
      sql: `WITH m AS (
          SELECT COALESCE(st.patient_id, '') AS pid, COALESCE(st.patient_name, '') AS pname
          FROM studies st WHERE (${s.sql}) AND (${where.sql})
          GROUP BY 1, 2 ORDER BY 2, 1 LIMIT ? OFFSET ?)
        SELECT m.pid, m.pname, latest.*, counts.*
        FROM m
        CROSS JOIN LATERAL (
          SELECT ${selectColumns(PATIENT_COLUMNS)}, st.attributes AS st_attributes
          FROM studies st WHERE ${samePatient('st')} AND (${s.sql})
          ORDER BY st.id DESC LIMIT 1) latest
        CROSS JOIN LATERAL (
          SELECT count(DISTINCT s3.id) AS n_studies, count(DISTINCT se.id) AS n_series, count(i.id) AS n_instances
          FROM studies s3 LEFT JOIN series se ON se.study_id = s3.id LEFT JOIN instances i ON i.series_id = se.id
          WHERE ${samePatient('s3')} AND (${s3.sql})) counts
        ORDER BY m.pname, m.pid`,
      bindings: [...s.bindings, ...where.bindings, plan.limit, plan.offset, ...s.bindings, ...s3.bindings],
    });
    return r.map((x) => ({
      columns: { ...columnsOf(x, PATIENT_COLUMNS), 'study.patient_id': x.pid as string, 'study.patient_name': x.pname as string },
      studyAttributes: json(x.st_attributes),
      counts: { patientStudies: num(x.n_studies), patientSeries: num(x.n_series), patientInstances: num(x.n_instances) },
    }));
  }

  type Part = Pick<QueryRow, 'columns' | 'modalities' | 'sopClasses'> & { attributes: DicomJson; counts: QueryRow['counts'] };

  /** A study's columns, JSON and aggregates, from a row selected with studySelect. */
  const studyPart = (x: Record<string, unknown>, aggregates: boolean): Part => ({
    columns: columnsOf(x, STUDY_COLUMNS),
    attributes: json(x.st_attributes),
    // Counts, modalities and SOP classes are kept on the rows (migration 006's triggers).
    ...(aggregates
      ? { modalities: textArray(x.st_modalities), sopClasses: textArray(x.st_sop_classes), counts: { studySeries: num(x.st_n_series), studyInstances: num(x.st_n_instances) } }
      : { counts: {} }),
  });
  const studySelect = (aggregates: boolean) => [
    selectColumns(STUDY_COLUMNS),
    'st.id AS st_id',
    'st.attributes AS st_attributes',
    ...(aggregates ? ['st.n_series AS st_n_series', 'st.n_instances AS st_n_instances', 'st.modalities AS st_modalities', 'st.sop_classes AS st_sop_classes'] : []),
  ];
  const seriesPart = (x: Record<string, unknown>, aggregates: boolean): Part => ({
    columns: columnsOf(x, SERIES_COLUMNS),
    attributes: json(x.se_attributes),
    counts: aggregates ? { seriesInstances: num(x.se_n_instances) } : {},
  });
  const seriesSelect = (aggregates: boolean) => [selectColumns(SERIES_COLUMNS), 'se.id AS se_id', 'se.attributes AS se_attributes', ...(aggregates ? ['se.n_instances AS se_n_instances'] : [])];

  /**
   * The studies (series) of a page's rows, each read and parsed once: a thousand instances
   * of one series would otherwise carry the same study and series columns and JSON a
   * thousand times. Rows share the parts and only read them.
   */
  async function parts(table: 'studies' | 'series', idList: number[], aggregates: boolean): Promise<Map<number, Part>> {
    const ids = [...new Set(idList)];
    const out = new Map<number, Part>();
    if (ids.length === 0) return out;
    const [select, a, part] = table === 'studies' ? [studySelect(aggregates), 'st', studyPart] : [seriesSelect(aggregates), 'se', seriesPart];
    const r = await rows({ sql: `SELECT ${select.join(', ')} FROM ${table} ${a} WHERE ${a}.id IN (${placeholders(ids.length)})`, bindings: ids });
    for (const x of r) out.set(num(x[`${a}_id`]), part(x, aggregates));
    return out;
  }
  const EMPTY_PART: Part = { columns: {}, attributes: {}, counts: {} };

  async function hierarchy(plan: QueryPlan): Promise<QueryRow[]> {
    const where = new Compiler().conditions(plan.conditions);
    const s = scopeSql(plan, 'st');
    const level = plan.level;
    // STUDY and SERIES: what is selected; IMAGE reads its own columns after the page is chosen (below).
    const select = level === 'STUDY' ? studySelect(plan.studyAggregates) : level === 'SERIES' ? ['st.id AS st_id', ...seriesSelect(plan.seriesAggregates)] : [];
    let from = 'studies st';
    let order = 'st.id';
    const bindings: unknown[] = [];
    if (level === 'SERIES' || level === 'IMAGE') {
      from = 'series se JOIN studies st ON st.id = se.study_id';
      order = 'st.id, se.series_number NULLS LAST, se.id';
    }
    const wide: string[] = [];
    if (level === 'IMAGE') {
      wide.push(selectColumns(INSTANCE_COLUMNS), 'i.transfer_syntax_uid AS i_transfer_syntax_uid');
      from = 'instances i JOIN series se ON se.id = i.series_id JOIN studies st ON st.id = se.study_id';
      order += ', i.instance_number NULLS LAST, i.id';
      if (plan.instanceTags === 'all') wide.push('i.metadata AS i_metadata');
      else {
        const tags = plan.instanceTags.filter((t) => TAG_RE.test(t));
        if (tags.length) {
          // Only the keys to return: the whole metadata of a thousand instances is large.
          // The default keys are kept apart in qido_attributes (NULL for a row written
          // without it: then from the metadata).
          const fromMetadata = `(SELECT COALESCE(jsonb_object_agg(md.k, md.v), '{}'::jsonb) FROM jsonb_each(i.metadata) AS md(k, v) WHERE md.k IN (${placeholders(tags.length)}))`;
          const covered = tags.every((t) => QIDO_INSTANCE_TAGS.includes(t));
          wide.push(covered ? `COALESCE(i.qido_attributes, ${fromMetadata}) AS i_metadata` : `${fromMetadata} AS i_metadata`);
          bindings.push(...tags);
        }
      }
    }
    const page = { sql: `FROM ${from} WHERE (${s.sql}) AND (${where.sql}) ORDER BY ${order} LIMIT ? OFFSET ?`, bindings: [...s.bindings, ...where.bindings, plan.limit, plan.offset] };
    const r = await rows(
      level === 'IMAGE'
        ? // The page is chosen on narrow rows (the sort keys), then each instance's wide columns
          // are read by id: sorting a thousand rows that carry their JSON took PostgreSQL
          // twice as long (issue 13). The outer order is the page's, which PostgreSQL knows
          // it already has (the lateral join keeps its outer rows' order): no second sort.
          {
            sql: `SELECT p.st_id, p.se_id, ${wide.join(', ')}
              FROM (SELECT st.id AS st_id, se.id AS se_id, se.series_number AS se_n, i.instance_number AS i_n, i.id AS i_id ${page.sql}) p
              CROSS JOIN LATERAL (SELECT * FROM instances WHERE instances.id = p.i_id) i
              ORDER BY p.st_id, p.se_n NULLS LAST, p.se_id, p.i_n NULLS LAST, p.i_id`,
            bindings: [...bindings, ...page.bindings],
          }
        : { sql: `SELECT ${select.join(', ')} ${page.sql}`, bindings: [...bindings, ...page.bindings] },
    );

    // A study (series) deleted between the two reads leaves its rows without its part: empty.
    const studies = level === 'STUDY' ? undefined : await parts('studies', r.map((x) => num(x.st_id)), plan.studyAggregates);
    const series = level === 'IMAGE' ? await parts('series', r.map((x) => num(x.se_id)), plan.seriesAggregates) : undefined;
    // Rows of one study (series) share its columns and counts instead of copying them:
    // a row's own columns inherit the shared ones (prototype), so a thousand instances of
    // one series allocate only their own six. Copying all 24 into each row had them stored
    // one by one under computed keys, which turns an object into a slow dictionary past
    // a dozen properties (V8): 7 MB of garbage for a 1,000-instance /instances (issue 13).
    // Nothing downstream writes to a row's columns or counts (core/query.ts only reads).
    const shared = new Map<string, { columns: QueryRow['columns']; counts: QueryRow['counts']; st: Part; se?: Part }>();
    return r.map((x) => {
      const stId = num(x.st_id);
      const seId = level === 'STUDY' ? 0 : num(x.se_id);
      const key = `${stId}/${seId}`;
      let sh = shared.get(key);
      if (!sh) {
        const st = studies ? (studies.get(stId) ?? EMPTY_PART) : studyPart(x, plan.studyAggregates);
        const se = level === 'STUDY' ? undefined : series ? (series.get(seId) ?? EMPTY_PART) : seriesPart(x, plan.seriesAggregates);
        sh = se ? { columns: { ...st.columns, ...se.columns }, counts: { ...st.counts, ...se.counts }, st, se } : { columns: st.columns, counts: st.counts, st };
        // A study or series level row is the only one of its study (series): nothing to share.
        if (level === 'IMAGE') shared.set(key, sh);
      }
      const columns: QueryRow['columns'] = level === 'IMAGE' ? columnsOf(x, INSTANCE_COLUMNS, Object.create(sh.columns)) : sh.columns;
      const row: QueryRow = { columns, studyAttributes: sh.st.attributes, counts: sh.counts };
      if (plan.studyAggregates) {
        row.modalities = sh.st.modalities;
        row.sopClasses = sh.st.sopClasses;
      }
      if (sh.se) row.seriesAttributes = sh.se.attributes;
      if (level === 'IMAGE') {
        row.transferSyntaxUid = String(x.i_transfer_syntax_uid);
        if (x.i_metadata !== undefined) row.instanceMetadata = json(x.i_metadata);
      }
      return row;
    });
  }

  return {
    async find(plan) {
      // Defence in depth: the service never sends an empty scope, but if it did, nothing is read.
      if (plan.departmentIds !== 'all' && plan.departmentIds.length === 0) return [];
      if (!Number.isSafeInteger(plan.limit) || plan.limit < 1 || !Number.isSafeInteger(plan.offset) || plan.offset < 0) {
        throw new RangeError('bad limit or offset');
      }
      return plan.level === 'PATIENT' ? patients(plan) : hierarchy(plan);
    },
  };
}

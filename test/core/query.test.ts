// Query (C-FIND / QIDO-RS) against fixture rows inserted directly: every matching rule
// of PS3.4 C.2.2.2 at each level, paging, return keys, injection attempts, and the
// department scope (rule 3). Runs on PGlite, and on PostgreSQL with TEST_DATABASE_URL.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzyNamePatterns, parseRange, wildcardToLike } from '../../src/core/dicom/query-keys.js';
import type { Principal } from '../../src/core/principal.js';
import { createQueryService, type DicomJson, type QueryRepo, type QueryRequest, type QueryService } from '../../src/core/query.js';
import type { Db } from '../../src/db/knex.js';
import { createQueryRepo } from '../../src/db/query.repo.js';
import { databasesUnderTest } from '../helpers/db.js';

// ---------- fixture ----------

const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const SR = '1.2.840.10008.5.1.4.1.1.88.11';
const US = '1.2.840.10008.5.1.4.1.1.6.1';
const ELE = '1.2.840.10008.1.2.1';
const QUOTE_NAME = "O'Brien^Ma%ry_Ann";

const str = (vr: string, v: string | number | undefined) => (v === undefined ? { vr } : { vr, Value: [v] });
const pn = (v: string | undefined) => (v === undefined ? { vr: 'PN' } : { vr: 'PN', Value: [{ Alphabetic: v }] });

interface StudySpec {
  dept: 'A' | 'B';
  uid: string;
  patientId: string;
  patientName: string;
  birthDate?: string;
  sex?: string;
  date?: string;
  time?: string;
  accession?: string;
  studyId?: string;
  description?: string;
  referring?: string;
  extra?: DicomJson;
  series: SeriesSpec[];
}
interface SeriesSpec {
  uid: string;
  modality: string;
  number?: number;
  description?: string;
  bodyPart?: string;
  extra?: DicomJson;
  instances: { uid: string; sopClass: string; number?: number; rows?: number; extra?: DicomJson }[];
}

const STUDIES: StudySpec[] = [
  {
    dept: 'A', uid: '1.2.3.1', patientId: 'PID001', patientName: 'Smith^John', birthDate: '19700101', sex: 'M',
    date: '20200115', time: '103000', accession: 'ACC001', studyId: 'S1', description: 'CT Chest', referring: 'Doe^Jane',
    extra: {
      '00104000': str('LT', 'VIP patient'),
      '00101010': str('AS', '050Y'),
      '00081032': { vr: 'SQ', Value: [{ '00080100': str('SH', 'CT-CHEST'), '00080102': str('SH', 'LOCAL'), '00080104': str('LO', 'CT of the chest') }] },
      '00324000': str('LT', 'path C:\\dir\\50% done_now'),
    },
    series: [
      {
        uid: '1.2.3.1.1', modality: 'CT', number: 1, description: 'Axial 5mm', bodyPart: 'CHEST',
        extra: { '00081050': pn('House^Gregory'), '00400244': str('DA', '20200115'), '00400245': str('TM', '103500') },
        instances: [
          { uid: '1.2.3.1.1.1', sopClass: CT, number: 1, rows: 512, extra: { '00180050': { vr: 'DS', Value: [5] }, '00080008': { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] }, '0008002A': str('DT', '20200115103512.25') } },
          { uid: '1.2.3.1.1.2', sopClass: CT, number: 2, rows: 512, extra: { '00180050': { vr: 'DS', Value: [2.5] }, '00080008': { vr: 'CS', Value: ['DERIVED', 'SECONDARY'] }, '0008002A': str('DT', '20200115110000') } },
          { uid: '1.2.3.1.1.3', sopClass: CT, number: 3, rows: 512, extra: { '00180050': { vr: 'DS', Value: ['5'] } } },
        ],
      },
      { uid: '1.2.3.1.2', modality: 'SR', number: 2, description: 'Report', instances: [{ uid: '1.2.3.1.2.1', sopClass: SR, number: 1 }] },
    ],
  },
  {
    dept: 'A', uid: '1.2.3.2', patientId: 'PID001', patientName: 'Smith^John', birthDate: '19700101', sex: 'M',
    date: '20210620', time: '235959.5', accession: 'ACC002', studyId: 'S2', description: 'MR Brain',
    series: [{ uid: '1.2.3.2.1', modality: 'MR', number: 1, description: 'T1 sag', instances: [{ uid: '1.2.3.2.1.1', sopClass: MR, number: 1, rows: 256 }, { uid: '1.2.3.2.1.2', sopClass: MR, number: 2, rows: 256 }] }],
  },
  {
    dept: 'A', uid: '1.2.3.3', patientId: "PID'002", patientName: QUOTE_NAME, birthDate: '19851224', sex: 'F',
    date: '20191231', time: '0800', accession: 'AC%C_3', studyId: 'S3', description: 'CT Abdomen', referring: 'Who^Doctor',
    series: [{ uid: '1.2.3.3.1', modality: 'CT', number: 1, instances: [{ uid: '1.2.3.3.1.1', sopClass: CT, number: 1 }] }],
  },
  {
    dept: 'A', uid: '1.2.3.4', patientId: 'PID003', patientName: 'Müller^Jürgen', sex: 'M',
    date: '20200301', accession: 'ACC004', description: 'US Abdomen',
    series: [{ uid: '1.2.3.4.1', modality: 'US', number: 1, instances: [{ uid: '1.2.3.4.1.1', sopClass: US, number: 1 }] }],
  },
  {
    dept: 'B', uid: '1.2.3.5', patientId: 'PID001', patientName: 'Smith^John', birthDate: '19700101', sex: 'M',
    date: '20200115', time: '090000', accession: 'B-ACC5', description: 'CT Chest follow-up',
    series: [{ uid: '1.2.3.5.1', modality: 'CT', number: 1, instances: [{ uid: '1.2.3.5.1.1', sopClass: CT, number: 1 }] }],
  },
  {
    dept: 'B', uid: '1.2.3.6', patientId: 'PID004', patientName: 'Smithson^Anna', birthDate: '19900505', sex: 'F',
    date: '20220202', time: '120000', accession: 'B-ACC6', description: 'MR Knee',
    series: [{ uid: '1.2.3.6.1', modality: 'MR', number: 3, description: 'PD fs', instances: [{ uid: '1.2.3.6.1.1', sopClass: MR, number: 7 }] }],
  },
];

async function loadFixture(db: Db): Promise<{ A: number; B: number }> {
  const [a] = await db('departments').insert({ name: 'A' }).returning('id');
  const [b] = await db('departments').insert({ name: 'B' }).returning('id');
  const dept = { A: Number(a.id), B: Number(b.id) };
  let key = 0;
  for (const s of STUDIES) {
    const studyAttrs: DicomJson = {
      '00080020': str('DA', s.date), '00080030': str('TM', s.time), '00080050': str('SH', s.accession),
      '00080090': pn(s.referring), '00081030': str('LO', s.description), '00100010': pn(s.patientName),
      '00100020': str('LO', s.patientId), '00100030': str('DA', s.birthDate), '00100040': str('CS', s.sex),
      '0020000D': str('UI', s.uid), '00200010': str('SH', s.studyId), ...s.extra,
    };
    const [st] = await db('studies')
      .insert({
        study_uid: s.uid, department_id: dept[s.dept], patient_id: s.patientId, patient_name: s.patientName,
        patient_birth_date: s.birthDate ?? null, patient_sex: s.sex ?? null, study_date: s.date ?? null, study_time: s.time ?? null,
        accession_number: s.accession ?? null, study_id: s.studyId ?? null, study_description: s.description ?? null,
        referring_physician_name: s.referring ?? null, attributes: JSON.stringify(studyAttrs),
      })
      .returning('id');
    for (const se of s.series) {
      const seriesAttrs: DicomJson = {
        '00080060': str('CS', se.modality), '0008103E': str('LO', se.description), '0020000E': str('UI', se.uid),
        '00200011': str('IS', se.number), '00180015': str('CS', se.bodyPart), ...se.extra,
      };
      const [row] = await db('series')
        .insert({
          study_id: st.id, series_uid: se.uid, modality: se.modality, series_number: se.number ?? null,
          series_description: se.description ?? null, body_part_examined: se.bodyPart ?? null, attributes: JSON.stringify(seriesAttrs),
        })
        .returning('id');
      for (const i of se.instances) {
        const metadata: DicomJson = {
          ...studyAttrs, ...seriesAttrs,
          '00080016': str('UI', i.sopClass), '00080018': str('UI', i.uid), '00200013': str('IS', i.number),
          '00280010': str('US', i.rows), '00280100': str('US', 16),
          '00291010': { vr: 'OB', InlineBinary: 'AAEC' },
          '7FE00010': { vr: 'OW', BulkDataURI: 'bulkdata/7FE00010' },
          ...i.extra,
        };
        await db('instances').insert({
          series_id: row.id, sop_instance_uid: i.uid, sop_class_uid: i.sopClass, instance_number: i.number ?? null,
          transfer_syntax_uid: ELE, object_key: `k/${++key}`, size: 1000 + key, sha256: 'ab'.repeat(32),
          rows: i.rows ?? null, columns: i.rows ?? null, metadata: JSON.stringify(metadata),
        });
      }
    }
  }
  return dept;
}

// ---------- helpers ----------

const user = (name: string, roles: Principal['roles'], globalAdmin = false): Principal => ({ kind: 'user', id: 1, name, globalAdmin, roles });
const first = (m: DicomJson, tag: string): unknown => m[tag]?.Value?.[0];
const uids = (ms: DicomJson[], tag = '0020000D') => ms.map((m) => first(m, tag) as string).sort();
const key = (tag: string, vr: string, ...values: unknown[]): DicomJson => ({ [tag]: values.length ? { vr, Value: values } : { vr } });

// ---------- pure helpers ----------

describe('query keys (pure)', () => {
  it('translates wildcards to LIKE and escapes %, _ and \\', () => {
    expect(wildcardToLike('Sm?th*')).toBe('Sm_th%');
    expect(wildcardToLike('50%_a\\b*')).toBe('50\\%\\_a\\\\b%');
    expect(fuzzyNamePatterns('jo*')).toEqual(['jo%%', '%^jo%%', '% jo%%']);
  });
  it('parses DA, TM and DT ranges', () => {
    expect(parseRange('DA', '20200101-20201231')).toEqual({ from: '20200101', to: '20201231' });
    expect(parseRange('DA', '-20201231')).toEqual({ from: undefined, to: '20201231' });
    expect(parseRange('DA', '2020.01.01-')).toEqual({ from: '20200101', to: undefined });
    expect(parseRange('DA', '20200101')).toEqual({ from: '20200101', to: '20200101' });
    expect(parseRange('TM', '1000-1100')).toEqual({ from: '1000', to: '110059.999999' });
    expect(parseRange('TM', '10')).toEqual({ from: '10', to: '105959.999999' });
    expect(parseRange('TM', '10:30:15.5')).toEqual({ from: '103015.5', to: '103015.599999' });
    expect(parseRange('DT', '2020-2021')).toEqual({ from: '2020', to: '20211231235959.999999' });
    expect(parseRange('DT', '20200101120000-0500')).toEqual({ from: '20200101120000', to: '20200101120000.999999' });
    expect(() => parseRange('DA', 'yesterday')).toThrow(/date/);
    expect(() => parseRange('DA', "2020'; --")).toThrow();
    expect(() => parseRange('TM', '-')).toThrow(/range/);
  });
});

// ---------- against the databases ----------

describe.each(databasesUnderTest())('query on $name', (dbu) => {
  let close: () => Promise<void>;
  let db: Db;
  let q: QueryService;
  let readerA: Principal;
  let readerB: Principal;
  let writerA: Principal;
  const admin = user('root', [], true);
  const calls: number[] = [];

  beforeAll(async () => {
    ({ db, close } = await dbu.open());
    const d = await loadFixture(db);
    const repo = createQueryRepo(db);
    const counting: QueryRepo = { find: (plan) => (calls.push(1), repo.find(plan)) };
    q = createQueryService(counting);
    readerA = user('ra', [{ departmentId: d.A, role: 'reader' }, { departmentId: d.B, role: 'writer' }]);
    readerB = user('rb', [{ departmentId: d.B, role: 'reader' }]);
    writerA = user('wa', [{ departmentId: d.A, role: 'writer' }]);
  });
  afterAll(async () => {
    await close?.();
  });

  const find = (p: Principal, req: Partial<QueryRequest> & { identifier?: DicomJson }) =>
    q.find(p, { level: 'STUDY', identifier: {}, ...req } as QueryRequest);
  const studies = async (identifier: DicomJson, p = readerA, extra: Partial<QueryRequest> = {}) =>
    uids((await find(p, { identifier, ...extra })).matches);

  describe('STUDY level', () => {
    it('universal matching returns every study in scope with the default attributes', async () => {
      const r = await find(readerA, { identifier: key('00100010', 'PN') });
      expect(uids(r.matches)).toEqual(['1.2.3.1', '1.2.3.2', '1.2.3.3', '1.2.3.4']);
      expect(r.truncated).toBe(false);
      const s1 = r.matches.find((m) => first(m, '0020000D') === '1.2.3.1')!;
      expect(s1['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Smith^John' }] });
      expect(s1['00080020']).toEqual({ vr: 'DA', Value: ['20200115'] });
      expect(s1['00080030']).toEqual({ vr: 'TM', Value: ['103000'] });
      expect(s1['00080050']).toEqual({ vr: 'SH', Value: ['ACC001'] });
      expect(s1['00080061']).toEqual({ vr: 'CS', Value: ['CT', 'SR'] });
      expect(s1['00201206']).toEqual({ vr: 'IS', Value: [2] });
      expect(s1['00201208']).toEqual({ vr: 'IS', Value: [4] });
      expect(s1['00080090']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] });
      expect(s1['00080056']).toEqual({ vr: 'CS', Value: ['ONLINE'] });
      // Not returned: the front door's RetrieveURL/QueryRetrieveLevel, non-default attributes, bulk data.
      expect(s1['00081190']).toBeUndefined();
      expect(s1['00080052']).toBeUndefined();
      expect(s1['00104000']).toBeUndefined();
      // An empty default is returned empty (PS3.18 Table 10.6.3-3); keys are sorted.
      const s4 = r.matches.find((m) => first(m, '0020000D') === '1.2.3.4')!;
      expect(s4['00080090']).toEqual({ vr: 'PN' });
      expect(s4['00080030']).toEqual({ vr: 'TM' });
      expect(Object.keys(s4)).toEqual([...Object.keys(s4)].sort());
    });

    it('single value matching on indexed columns, with quotes and LIKE characters taken literally', async () => {
      expect(await studies(key('00100020', 'LO', 'PID001'))).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies(key('00100020', 'LO', "PID'002"))).toEqual(['1.2.3.3']);
      expect(await studies(key('00100010', 'PN', { Alphabetic: QUOTE_NAME }))).toEqual(['1.2.3.3']);
      expect(await studies(key('00100010', 'PN', QUOTE_NAME))).toEqual(['1.2.3.3']);
      expect(await studies(key('00080050', 'SH', 'AC%C_3'))).toEqual(['1.2.3.3']);
      expect(await studies(key('00080050', 'SH', 'AC%'))).toEqual([]);
      expect(await studies(key('00080050', 'SH', '%'))).toEqual([]);
      expect(await studies(key('00100040', 'CS', 'F'))).toEqual(['1.2.3.3']);
      expect(await studies(key('00100010', 'PN', 'smith^john'))).toEqual([]); // case-sensitive without fuzzy
      expect(await studies({ ...key('00100020', 'LO', 'PID001'), ...key('00200010', 'SH', 'S2') })).toEqual(['1.2.3.2']);
      // The matching key is returned with its stored value.
      const [m] = (await find(readerA, { identifier: key('00081030', 'LO', 'MR Brain') })).matches;
      expect(m['00081030']).toEqual({ vr: 'LO', Value: ['MR Brain'] });
    });

    it('universal matching: an empty value, a lone * and an absent Value all match everything', async () => {
      const all = ['1.2.3.1', '1.2.3.2', '1.2.3.3', '1.2.3.4'];
      expect(await studies(key('00080050', 'SH', ''))).toEqual(all);
      expect(await studies(key('00080050', 'SH', '*'))).toEqual(all);
      expect(await studies({ '00080050': { vr: 'SH', Value: [] } })).toEqual(all);
      expect(await studies({ '00080050': { vr: 'SH' } })).toEqual(all);
    });

    it('wildcard matching with * and ?', async () => {
      expect(await studies(key('00100010', 'PN', 'Smith*'))).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies(key('00100010', 'PN', 'Sm?th^J*'))).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies(key('00100010', 'PN', 'Smith?John'))).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies(key('00100010', 'PN', 'Smi?'))).toEqual([]);
      expect(await studies(key('00081030', 'LO', '*Abdomen'))).toEqual(['1.2.3.3', '1.2.3.4']);
      expect(await studies(key('00080050', 'SH', 'ACC00?'))).toEqual(['1.2.3.1', '1.2.3.2', '1.2.3.4']);
      expect(await studies(key('00100010', 'PN', 'M*ller*'))).toEqual(['1.2.3.4']);
    });

    it('LIKE injection: %, _ and \\ in a wildcard value only match themselves', async () => {
      expect(await studies(key('00100010', 'PN', '*Ma%ry*'))).toEqual(['1.2.3.3']);
      expect(await studies(key('00100010', 'PN', '*%*'))).toEqual(['1.2.3.3']);
      expect(await studies(key('00100010', 'PN', '*_*'))).toEqual(['1.2.3.3']);
      expect(await studies(key('00100010', 'PN', '%*'))).toEqual([]);
      expect(await studies(key('00080050', 'SH', 'AC_C*'))).toEqual([]);
      expect(await studies(key('00080050', 'SH', 'AC%C?3'))).toEqual(['1.2.3.3']);
      // A backslash (in a VR where it is not a value separator) is literal too.
      expect(await studies(key('00324000', 'LT', '*C:\\dir\\50% done?now'))).toEqual(['1.2.3.1']);
      expect(await studies(key('00324000', 'LT', '*C:\\\\dir*'))).toEqual([]);
      expect(await studies(key('00324000', 'LT', '*\\%*'))).toEqual([]);
    });

    it('SQL injection attempts match nothing and harm nothing', async () => {
      for (const evil of ["'; DROP TABLE studies; --", "' OR '1'='1", "Smith' OR 1=1 --", "*' OR 'a'='a", '\\%', "$$; SELECT 1; $$"]) {
        expect(await studies(key('00100010', 'PN', evil))).toEqual([]);
        expect(await studies(key('00100020', 'LO', evil))).toEqual([]);
        expect(await studies(key('00104000', 'LT', evil))).toEqual([]);
      }
      expect(await studies(key('0020000D', 'UI', "1.2.3.1' OR '1'='1"))).toEqual([]);
      // Only backslashes: value separators around empty values, i.e. universal matching (and still only in scope).
      expect(await studies(key('00100010', 'PN', '\\\\\\'))).toEqual(['1.2.3.1', '1.2.3.2', '1.2.3.3', '1.2.3.4']);
      await expect(find(readerA, { identifier: { "00100010') OR 1=1 --": { vr: 'PN', Value: ['x'] } } })).rejects.toMatchObject({ kind: 'invalid' });
      await expect(find(readerA, { identifier: { '0010001"': { vr: 'PN', Value: ['x'] } } })).rejects.toMatchObject({ kind: 'invalid' });
      await expect(find(readerA, { identifier: {}, includeFields: ['00100010; DROP'] })).rejects.toMatchObject({ kind: 'invalid' });
      await expect(find(readerA, { identifier: key('00080020', 'DA', "20200101' OR '1'='1") })).rejects.toMatchObject({ kind: 'invalid' });
      await expect(find(readerA, { identifier: key('00200010', 'SH', { evil: true }) })).rejects.toMatchObject({ kind: 'invalid' });
      // A lying VR changes nothing for an indexed key, nor for a key of the standard dictionary.
      expect(await studies({ '00100010': { vr: 'UI', Value: ['Smith*'] } })).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies({ '00104000': { vr: 'UI', Value: ['VIP*'] } })).toEqual(['1.2.3.1']);
      await expect(find(readerA, { identifier: key('00100010', 'PN', 'Smith\0') })).rejects.toMatchObject({ kind: 'invalid' });
      await expect(find(readerA, { identifier: key('00100010', 'PN', 'x'.repeat(5000)) })).rejects.toMatchObject({ kind: 'invalid' });
      expect(Number((await db('studies').count({ n: '*' }))[0].n)).toBe(6);
    });

    it('date range matching: A-B, -B, A- and a single date', async () => {
      expect(await studies(key('00080020', 'DA', '20200101-20201231'))).toEqual(['1.2.3.1', '1.2.3.4']);
      expect(await studies(key('00080020', 'DA', '-20191231'))).toEqual(['1.2.3.3']);
      expect(await studies(key('00080020', 'DA', '20210101-'))).toEqual(['1.2.3.2']);
      expect(await studies(key('00080020', 'DA', '20200115'))).toEqual(['1.2.3.1']);
      expect(await studies(key('00080020', 'DA', '20200116-20200229'))).toEqual([]);
      expect(await studies(key('00100030', 'DA', '19800101-'))).toEqual(['1.2.3.3']);
      await expect(find(readerA, { identifier: key('00080020', 'DA', 'yesterday') })).rejects.toMatchObject({ kind: 'invalid', reason: 'bad-date' });
    });

    it('time range matching: A-B, -B, A-, and a single time as its interval', async () => {
      expect(await studies(key('00080030', 'TM', '1000-1100'))).toEqual(['1.2.3.1']);
      expect(await studies(key('00080030', 'TM', '-0900'))).toEqual(['1.2.3.3']);
      expect(await studies(key('00080030', 'TM', '2300-'))).toEqual(['1.2.3.2']);
      expect(await studies(key('00080030', 'TM', '10'))).toEqual(['1.2.3.1']);
      expect(await studies(key('00080030', 'TM', '0800'))).toEqual(['1.2.3.3']);
      expect(await studies(key('00080030', 'TM', '235959'))).toEqual(['1.2.3.2']); // 23:59:59.5 is within that second
    });

    it('combined StudyDate + StudyTime range matching when asked for, independent otherwise', async () => {
      const id = { ...key('00080020', 'DA', '20200115-20210620'), ...key('00080030', 'TM', '1100-2300') };
      expect(await studies(id)).toEqual([]);
      expect(await studies(id, readerA, { combinedDateTime: true })).toEqual(['1.2.3.4']);
      const from = { ...key('00080020', 'DA', '20200115-'), ...key('00080030', 'TM', '1000-') };
      expect(await studies(from, readerA, { combinedDateTime: true })).toEqual(['1.2.3.1', '1.2.3.2', '1.2.3.4']);
      const to = { ...key('00080020', 'DA', '-20200115'), ...key('00080030', 'TM', '-1030') };
      expect(await studies(to, readerA, { combinedDateTime: true })).toEqual(['1.2.3.1', '1.2.3.3']);
    });

    it('list of UID matching, backslash-separated or as several values', async () => {
      expect(await studies(key('0020000D', 'UI', '1.2.3.1\\1.2.3.3'))).toEqual(['1.2.3.1', '1.2.3.3']);
      expect(await studies(key('0020000D', 'UI', '1.2.3.1', '1.2.3.4', '9.9.9'))).toEqual(['1.2.3.1', '1.2.3.4']);
      expect(await studies(key('0020000D', 'UI', '1.2.3.*'))).toEqual([]); // no wildcards on UIDs
      const many = Array.from({ length: 999 }, (_, n) => `9.${n}`);
      expect(await studies(key('0020000D', 'UI', ...many, '1.2.3.2'))).toEqual(['1.2.3.2']);
      expect(await studies(key('0020000D', 'UI', [...many, '1.2.3.2'].join('\\')))).toEqual(['1.2.3.2']);
      await expect(find(readerA, { identifier: key('0020000D', 'UI', ...many, '1', '2') })).rejects.toMatchObject({ kind: 'invalid', reason: 'too-many-values' });
      expect(await studies(key('0020000D', 'UI', '1.2.3.5'))).toEqual([]); // department B
    });

    it('ModalitiesInStudy matches any series of the study', async () => {
      expect(await studies(key('00080061', 'CS', 'MR'))).toEqual(['1.2.3.2']);
      expect(await studies(key('00080061', 'CS', 'SR'))).toEqual(['1.2.3.1']);
      expect(await studies(key('00080061', 'CS', 'CT\\US'))).toEqual(['1.2.3.1', '1.2.3.3', '1.2.3.4']);
      expect(await studies(key('00080061', 'CS', 'US', 'MR'))).toEqual(['1.2.3.2', '1.2.3.4']);
      expect(await studies(key('00080061', 'CS', 'M*'))).toEqual(['1.2.3.2']);
    });

    it('person name fuzzy matching: case-insensitive, on the start of any component or word', async () => {
      const fuzzy = { fuzzy: true };
      expect(await studies(key('00100010', 'PN', 'smith'), readerA, fuzzy)).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies(key('00100010', 'PN', 'JOHN'), readerA, fuzzy)).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies(key('00100010', 'PN', 'smith^john'), readerA, fuzzy)).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies(key('00100010', 'PN', 'ohn'), readerA, fuzzy)).toEqual([]);
      expect(await studies(key('00100010', 'PN', "o'brien"), readerA, fuzzy)).toEqual(['1.2.3.3']);
      expect(await studies(key('00100010', 'PN', 'ma%'), readerA, fuzzy)).toEqual(['1.2.3.3']);
      expect(await studies(key('00100010', 'PN', 'm_'), readerA, fuzzy)).toEqual([]);
      expect(await studies(key('00100010', 'PN', 'mül'), readerA, fuzzy)).toEqual(['1.2.3.4']);
      expect(await studies(key('00100010', 'PN', 'j*n'), readerA, fuzzy)).toEqual(['1.2.3.1', '1.2.3.2', '1.2.3.4']); // John, Jürgen
      expect(await studies(key('00100010', 'PN', 'j*hn'), readerA, fuzzy)).toEqual(['1.2.3.1', '1.2.3.2']);
      expect(await studies(key('00080090', 'PN', 'jane'), readerA, fuzzy)).toEqual(['1.2.3.1']);
      expect(await studies(key('00100010', 'PN', 'smith'), admin, fuzzy)).toEqual(['1.2.3.1', '1.2.3.2', '1.2.3.5', '1.2.3.6']);
      // fuzzy is only about names
      expect(await studies(key('00081030', 'LO', 'ct chest'), readerA, fuzzy)).toEqual([]);
    });

    it('non-indexed attributes match through the JSON: single value, wildcard, sequence', async () => {
      expect(await studies(key('00104000', 'LT', 'VIP patient'))).toEqual(['1.2.3.1']);
      expect(await studies(key('00104000', 'LT', 'VIP*'))).toEqual(['1.2.3.1']);
      expect(await studies(key('00104000', 'LT', 'vip*'))).toEqual([]);
      expect(await studies(key('00101010', 'AS', '050Y'))).toEqual(['1.2.3.1']);
      const seq = (item: DicomJson): DicomJson => ({ '00081032': { vr: 'SQ', Value: [item] } });
      expect(await studies(seq(key('00080100', 'SH', 'CT-CHEST')))).toEqual(['1.2.3.1']);
      expect(await studies(seq({ ...key('00080100', 'SH', 'CT-*'), ...key('00080102', 'SH', 'LOCAL') }))).toEqual(['1.2.3.1']);
      expect(await studies(seq({ ...key('00080100', 'SH', 'CT-CHEST'), ...key('00080102', 'SH', 'SNM3') }))).toEqual([]);
      expect(await studies(seq(key('00080100', 'SH', 'CT-HEAD')))).toEqual([]);
      // an item with only return keys is a return key: everything matches, and the sequence comes back
      const r = await find(readerA, { identifier: seq(key('00080100', 'SH')) });
      expect(r.matches).toHaveLength(4);
      const s1 = r.matches.find((m) => first(m, '0020000D') === '1.2.3.1')!;
      expect((s1['00081032'].Value![0] as DicomJson)['00080104']).toEqual({ vr: 'LO', Value: ['CT of the chest'] });
      expect(r.matches.find((m) => first(m, '0020000D') === '1.2.3.2')!['00081032']).toEqual({ vr: 'SQ' });
      await expect(find(readerA, { identifier: { '00081032': { vr: 'SQ', Value: [{}, {}] } } })).rejects.toMatchObject({ kind: 'invalid' });
    });

    it('return keys: requested ones (empty when not stored), includeFields, includeAll', async () => {
      const r = await find(readerA, { identifier: { ...key('0020000D', 'UI', '1.2.3.1'), ...key('00101010', 'AS'), ...key('00091001', 'LO') }, includeFields: ['00104000', '00100021'] });
      const [m] = r.matches;
      expect(m['00101010']).toEqual({ vr: 'AS', Value: ['050Y'] });
      expect(m['00104000']).toEqual({ vr: 'LT', Value: ['VIP patient'] });
      expect(m['00100021']).toEqual({ vr: 'LO' });
      expect(m['00091001']).toEqual({ vr: 'LO' });
      const all = (await find(readerA, { identifier: key('0020000D', 'UI', '1.2.3.1'), includeAll: true })).matches[0];
      expect(all['00104000']).toEqual({ vr: 'LT', Value: ['VIP patient'] });
      expect(all['00081032'].vr).toBe('SQ');
      expect(all['00201208']).toEqual({ vr: 'IS', Value: [4] });
      expect(all['0008103E']).toBeUndefined(); // a series attribute
    });

    it('limit, offset and truncated, in a stable order; a server-side maximum', async () => {
      const full = (await find(admin, {})).matches.map((m) => first(m, '0020000D'));
      expect(full).toHaveLength(6);
      const pages: unknown[] = [];
      for (let offset = 0; offset < 6; offset += 4) {
        const r = await find(admin, { limit: 4, offset });
        expect(r.truncated).toBe(offset === 0);
        pages.push(...r.matches.map((m) => first(m, '0020000D')));
      }
      expect(pages).toEqual(full);
      expect((await find(admin, { limit: 6 })).truncated).toBe(false);
      expect((await find(admin, { limit: 5 })).truncated).toBe(true);
      expect((await find(admin, { offset: 6 })).matches).toEqual([]);
      const small = createQueryService(createQueryRepo(db), { maxResults: 2 });
      const r = await small.find(admin, { level: 'STUDY', identifier: {} });
      expect(r.matches).toHaveLength(2);
      expect(r.truncated).toBe(true);
      expect((await small.find(admin, { level: 'STUDY', identifier: {}, limit: 100 })).matches).toHaveLength(2);
      await expect(find(admin, { limit: 0 })).rejects.toMatchObject({ kind: 'invalid' });
      await expect(find(admin, { limit: 1.5 })).rejects.toMatchObject({ kind: 'invalid' });
      await expect(find(admin, { offset: -1 })).rejects.toMatchObject({ kind: 'invalid' });
      await expect(find(admin, { level: 'FRAME' as never })).rejects.toMatchObject({ kind: 'invalid' });
    });

    it('ignores QueryRetrieveLevel and keys of lower levels', async () => {
      const r = await find(readerA, { identifier: { ...key('00080052', 'CS', 'IMAGE'), ...key('00080060', 'CS', 'XA'), ...key('0020000D', 'UI', '1.2.3.2') } });
      expect(uids(r.matches)).toEqual(['1.2.3.2']);
      expect(r.matches[0]['00080052']).toBeUndefined();
      expect(r.matches[0]['00080060']).toBeUndefined();
    });
  });

  describe('SERIES level', () => {
    const series = async (identifier: DicomJson, p = readerA, extra: Partial<QueryRequest> = {}) =>
      uids((await find(p, { level: 'SERIES', identifier, ...extra })).matches, '0020000E');

    it('returns series in scope with defaults, the study UID and counts', async () => {
      const r = await find(readerA, { level: 'SERIES', identifier: key('0020000D', 'UI', '1.2.3.1') });
      expect(uids(r.matches, '0020000E')).toEqual(['1.2.3.1.1', '1.2.3.1.2']);
      const [ct] = r.matches;
      expect(ct['00080060']).toEqual({ vr: 'CS', Value: ['CT'] });
      expect(ct['00200011']).toEqual({ vr: 'IS', Value: [1] });
      expect(ct['0008103E']).toEqual({ vr: 'LO', Value: ['Axial 5mm'] });
      expect(ct['00201209']).toEqual({ vr: 'IS', Value: [3] });
      expect(ct['0020000D']).toEqual({ vr: 'UI', Value: ['1.2.3.1'] });
      expect(ct['00400244']).toEqual({ vr: 'DA', Value: ['20200115'] });
      expect(ct['00400245']).toEqual({ vr: 'TM', Value: ['103500'] });
      expect(ct['00100010']).toBeUndefined(); // within one study, no study attributes by default
      expect(r.matches[1]['00400244']).toBeUndefined(); // "if present"
      // all series: the study's attributes too (PS3.18 §10.6.3.3)
      const all = await find(readerA, { level: 'SERIES', identifier: key('00080060', 'CS', 'MR') });
      expect(all.matches).toHaveLength(1);
      expect(all.matches[0]['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Smith^John' }] });
      expect(all.matches[0]['00201208']).toEqual({ vr: 'IS', Value: [2] });
    });

    it('matching: single, wildcard, list, number, date, study-level keys, JSON keys', async () => {
      expect(await series(key('00080060', 'CS', 'CT'))).toEqual(['1.2.3.1.1', '1.2.3.3.1']);
      expect(await series(key('00080060', 'CS', 'CT'), admin)).toEqual(['1.2.3.1.1', '1.2.3.3.1', '1.2.3.5.1']);
      expect(await series(key('0008103E', 'LO', 'T1*'))).toEqual(['1.2.3.2.1']);
      expect(await series(key('0008103E', 'LO', '?eport'))).toEqual(['1.2.3.1.2']);
      expect(await series(key('0020000E', 'UI', '1.2.3.1.2\\1.2.3.4.1\\1.2.3.5.1'))).toEqual(['1.2.3.1.2', '1.2.3.4.1']);
      expect(await series(key('00200011', 'IS', '2'))).toEqual(['1.2.3.1.2']);
      expect(await series(key('00200011', 'IS', 2))).toEqual(['1.2.3.1.2']);
      await expect(find(readerA, { level: 'SERIES', identifier: key('00200011', 'IS', 'two') })).rejects.toMatchObject({ kind: 'invalid' });
      expect(await series({ ...key('00080020', 'DA', '20200101-'), ...key('00080060', 'CS', 'CT') })).toEqual(['1.2.3.1.1']);
      expect(await series(key('00100010', 'PN', 'smith'), readerA, { fuzzy: true })).toEqual(['1.2.3.1.1', '1.2.3.1.2', '1.2.3.2.1']);
      expect(await series(key('00180015', 'CS', 'CHEST'))).toEqual(['1.2.3.1.1']);
      expect(await series(key('00081050', 'PN', 'House^Gregory'))).toEqual(['1.2.3.1.1']); // JSON, PN
      expect(await series(key('00081050', 'PN', 'greg'), readerA, { fuzzy: true })).toEqual(['1.2.3.1.1']);
      expect(await series(key('00081050', 'PN', 'H*'))).toEqual(['1.2.3.1.1']);
      expect(await series(key('00400244', 'DA', '20200101-20200131'))).toEqual(['1.2.3.1.1']); // JSON, range
      expect(await series(key('00104000', 'LT', 'VIP*'))).toEqual(['1.2.3.1.1', '1.2.3.1.2']); // study-level JSON key
      expect(await series(key('0008103E', 'LO', "'; DELETE FROM series; --"))).toEqual([]);
    });

    it('includeAll returns the stored series attributes', async () => {
      const [m] = (await find(readerA, { level: 'SERIES', identifier: key('0020000E', 'UI', '1.2.3.1.1'), includeAll: true })).matches;
      expect(m['00081050']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'House^Gregory' }] });
      expect(m['00180015']).toEqual({ vr: 'CS', Value: ['CHEST'] });
    });
  });

  describe('IMAGE level', () => {
    const images = async (identifier: DicomJson, p = readerA, extra: Partial<QueryRequest> = {}) =>
      uids((await find(p, { level: 'IMAGE', identifier, ...extra })).matches, '00080018');

    it('returns instances in scope with defaults and without bulk data', async () => {
      const r = await find(readerA, { level: 'IMAGE', identifier: { ...key('0020000D', 'UI', '1.2.3.1'), ...key('0020000E', 'UI', '1.2.3.1.1') } });
      expect(uids(r.matches, '00080018')).toEqual(['1.2.3.1.1.1', '1.2.3.1.1.2', '1.2.3.1.1.3']);
      const m = r.matches[0];
      expect(m['00080016']).toEqual({ vr: 'UI', Value: [CT] });
      expect(m['00200013']).toEqual({ vr: 'IS', Value: [1] });
      expect(m['00280010']).toEqual({ vr: 'US', Value: [512] });
      expect(m['00280100']).toEqual({ vr: 'US', Value: [16] });
      expect(m['00280008']).toBeUndefined(); // Type C "shall be present if known" (PS3.18 Table 10.6.3-5): left out when unknown
      expect(m['0020000E']).toEqual({ vr: 'UI', Value: ['1.2.3.1.1'] });
      expect(m['7FE00010']).toBeUndefined();
      expect(m['00291010']).toBeUndefined();
      expect(m['00100010']).toBeUndefined();
    });

    it('matching: UID lists, numbers, hierarchy constraints, JSON keys (multi-valued, DS, DT)', async () => {
      expect(await images(key('00080018', 'UI', '1.2.3.1.1.2', '1.2.3.5.1.1', '1.2.3.6.1.1'))).toEqual(['1.2.3.1.1.2']);
      expect(await images(key('00080018', 'UI', '1.2.3.5.1.1', '1.2.3.6.1.1'), readerB)).toEqual(['1.2.3.5.1.1', '1.2.3.6.1.1']);
      expect(await images({ ...key('0020000E', 'UI', '1.2.3.1.1'), ...key('00200013', 'IS', '2') })).toEqual(['1.2.3.1.1.2']);
      expect(await images(key('00280010', 'US', 256))).toEqual(['1.2.3.2.1.1', '1.2.3.2.1.2']);
      expect(await images(key('00080016', 'UI', `${SR}\\${US}`))).toEqual(['1.2.3.1.2.1', '1.2.3.4.1.1']);
      expect(await images({ ...key('00080060', 'CS', 'MR'), ...key('00100020', 'LO', 'PID001') })).toEqual(['1.2.3.2.1.1', '1.2.3.2.1.2']);
      expect(await images(key('00080008', 'CS', 'AXIAL'))).toEqual(['1.2.3.1.1.1']);
      expect(await images(key('00080008', 'CS', 'DER*'))).toEqual(['1.2.3.1.1.2']);
      expect(await images(key('00180050', 'DS', '5'))).toEqual(['1.2.3.1.1.1', '1.2.3.1.1.3']); // number or string in JSON
      expect(await images(key('00180050', 'DS', 2.5))).toEqual(['1.2.3.1.1.2']);
      expect(await images(key('0008002A', 'DT', '202001151035-202001151059'))).toEqual(['1.2.3.1.1.1']);
      expect(await images(key('0008002A', 'DT', '20200115110000'))).toEqual(['1.2.3.1.1.2']);
      expect(await images(key('0008002A', 'DT', '2020'))).toEqual(['1.2.3.1.1.1', '1.2.3.1.1.2']);
    });

    it('instances of several studies and series each carry their own study and series values, in order, page by page', async () => {
      // Rows of one series share its study and series values (db/query.repo.ts): a row must
      // never show another series' or study's.
      const identifier = { ...key('00100020', 'LO'), ...key('00081030', 'LO'), ...key('0008103E', 'LO'), ...key('00200011', 'IS'), ...key('00201209', 'IS'), ...key('00201208', 'IS') };
      const want = STUDIES.filter((s) => s.dept === 'A').flatMap((s) =>
        [...s.series].sort((a, b) => (a.number ?? 0) - (b.number ?? 0)).flatMap((se) =>
          se.instances.map((i) => [i.uid, s.patientId, s.description, se.description ?? null, se.number, se.instances.length, s.series.reduce((n, x) => n + x.instances.length, 0)]),
        ),
      );
      const got = (ms: DicomJson[]) => ms.map((m) => [first(m, '00080018'), first(m, '00100020'), first(m, '00081030'), first(m, '0008103E') ?? null, first(m, '00200011'), first(m, '00201209'), first(m, '00201208')]);
      expect(got((await find(readerA, { level: 'IMAGE', identifier })).matches)).toEqual(want);
      const pages: DicomJson[] = [];
      for (let offset = 0; offset < want.length; offset += 3) pages.push(...(await find(readerA, { level: 'IMAGE', identifier, limit: 3, offset })).matches);
      expect(got(pages)).toEqual(want);
    });

    it('requested keys, includeAll without bulk data', async () => {
      const [m] = (await find(readerA, { level: 'IMAGE', identifier: { ...key('00080018', 'UI', '1.2.3.1.1.1'), ...key('00180050', 'DS'), ...key('00083002', 'UI'), ...key('00201209', 'IS') } })).matches;
      expect(m['00180050']).toEqual({ vr: 'DS', Value: [5] });
      expect(m['00083002']).toEqual({ vr: 'UI', Value: [ELE] });
      expect(m['00201209']).toEqual({ vr: 'IS', Value: [3] });
      const [all] = (await find(readerA, { level: 'IMAGE', identifier: key('00080018', 'UI', '1.2.3.1.1.1'), includeAll: true })).matches;
      expect(all['00080008']).toEqual({ vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] });
      expect(all['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Smith^John' }] });
      expect(all['7FE00010']).toBeUndefined();
      expect(all['00291010']).toBeUndefined();
    });
  });

  describe('PATIENT level', () => {
    const patients = async (p: Principal, identifier: DicomJson = {}, extra: Partial<QueryRequest> = {}) =>
      (await find(p, { level: 'PATIENT', identifier, ...extra })).matches;
    const byId = (ms: DicomJson[]) => Object.fromEntries(ms.map((m) => [first(m, '00100020') as string, m]));

    it('groups visible studies by patient, counting only visible studies', async () => {
      const a = byId(await patients(readerA));
      expect(Object.keys(a).sort()).toEqual(["PID'002", 'PID001', 'PID003']);
      expect(a.PID001['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Smith^John' }] });
      expect(a.PID001['00100030']).toEqual({ vr: 'DA', Value: ['19700101'] });
      expect(a.PID001['00201200']).toEqual({ vr: 'IS', Value: [2] });
      expect(a.PID001['00201202']).toEqual({ vr: 'IS', Value: [3] });
      expect(a.PID001['00201204']).toEqual({ vr: 'IS', Value: [6] });
      expect(a.PID001['0020000D']).toBeUndefined();
      const b = byId(await patients(readerB));
      expect(Object.keys(b).sort()).toEqual(['PID001', 'PID004']);
      expect(b.PID001['00201200']).toEqual({ vr: 'IS', Value: [1] });
      expect(b.PID001['00201204']).toEqual({ vr: 'IS', Value: [1] });
      const all = byId(await patients(admin));
      expect(all.PID001['00201200']).toEqual({ vr: 'IS', Value: [3] });
      expect(all.PID001['00201204']).toEqual({ vr: 'IS', Value: [7] });
    });

    it('matching on patient keys; counts cover all visible studies of a matching patient', async () => {
      expect(Object.keys(byId(await patients(readerA, key('00100010', 'PN', 'Smith*'))))).toEqual(['PID001']);
      expect(Object.keys(byId(await patients(admin, key('00100010', 'PN', 'smith'), { fuzzy: true }))).sort()).toEqual(['PID001', 'PID004']);
      expect(Object.keys(byId(await patients(readerA, key('00100020', 'LO', "PID'002"))))).toEqual(["PID'002"]);
      expect(Object.keys(byId(await patients(readerA, key('00100030', 'DA', '-19751231'))))).toEqual(['PID001']);
      const vip = await patients(readerA, key('00104000', 'LT', 'VIP*')); // only in study 1.2.3.1
      expect(vip).toHaveLength(1);
      expect(vip[0]['00201200']).toEqual({ vr: 'IS', Value: [2] });
      // a study-level key is not a patient key: ignored
      expect(await patients(readerA, key('00080020', 'DA', '19000101'))).toHaveLength(3);
      expect(await patients(readerA, key('00100010', 'PN', "*' OR 1=1 --"))).toEqual([]);
    });

    it('paging and includeAll (patient attributes only)', async () => {
      const p1 = await patients(admin, {}, { limit: 2 });
      const p2 = await patients(admin, {}, { limit: 2, offset: 2 });
      expect(p1).toHaveLength(2);
      expect(p2).toHaveLength(2);
      expect(new Set([...p1, ...p2].map((m) => first(m, '00100020'))).size).toBe(4);
      expect((await find(admin, { level: 'PATIENT', identifier: {}, limit: 3 })).truncated).toBe(true);
      expect((await find(admin, { level: 'PATIENT', identifier: {}, limit: 4 })).truncated).toBe(false);
      const [m] = await patients(readerA, key('00100020', 'LO', 'PID001'), { includeAll: true });
      // Patient attributes of the latest visible study of the patient (1.2.3.2, which has no PatientAge).
      expect(m['00100040']).toEqual({ vr: 'CS', Value: ['M'] });
      expect(m['00101010']).toBeUndefined();
      expect(m['00081030']).toBeUndefined();
      expect(m['0020000D']).toBeUndefined();
    });
  });

  describe('department scope', () => {
    it('a study of department A is invisible to a reader of department B at every level', async () => {
      const s1 = key('0020000D', 'UI', '1.2.3.1');
      expect((await find(readerB, { identifier: s1 })).matches).toEqual([]);
      expect((await find(readerB, { level: 'SERIES', identifier: s1 })).matches).toEqual([]);
      expect((await find(readerB, { level: 'SERIES', identifier: key('0020000E', 'UI', '1.2.3.1.1') })).matches).toEqual([]);
      expect((await find(readerB, { level: 'IMAGE', identifier: key('00080018', 'UI', '1.2.3.1.1.1') })).matches).toEqual([]);
      expect((await find(readerB, { level: 'PATIENT', identifier: key('00100020', 'LO', 'PID003') })).matches).toEqual([]);
      expect(uids((await find(readerB, {})).matches)).toEqual(['1.2.3.5', '1.2.3.6']);
      expect((await find(readerB, { level: 'SERIES', identifier: {} })).matches).toHaveLength(2);
      expect((await find(readerB, { level: 'IMAGE', identifier: {} })).matches).toHaveLength(2);
      // a writer role in B gives reader A nothing of B
      expect(uids((await find(readerA, {})).matches)).not.toContain('1.2.3.5');
    });

    it('a writer-only principal sees nothing, and the database is not even asked', async () => {
      const before = calls.length;
      for (const level of ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'] as const) {
        expect(await find(writerA, { level, identifier: {} })).toEqual({ matches: [], truncated: false });
      }
      expect(await find(user('nobody', []), {})).toEqual({ matches: [], truncated: false });
      expect(calls.length).toBe(before);
    });

    it('a database failure is reported as unavailable, without the driver message', async () => {
      const broken = createQueryService({ find: async () => { throw new Error('relation "studies" does not exist: SELECT ...'); } });
      const e = await broken.find(admin, { level: 'STUDY', identifier: {} }).catch((x) => x);
      expect(e).toMatchObject({ kind: 'unavailable', reason: 'query-failed' });
      expect(e.message).not.toMatch(/SELECT|studies/);
    });

    it('a global admin sees everything', async () => {
      expect(uids((await find(admin, {})).matches)).toEqual(['1.2.3.1', '1.2.3.2', '1.2.3.3', '1.2.3.4', '1.2.3.5', '1.2.3.6']);
      expect((await find(admin, { level: 'SERIES', identifier: {} })).matches).toHaveLength(7);
      expect((await find(admin, { level: 'IMAGE', identifier: {} })).matches).toHaveLength(10);
      expect((await find(admin, { level: 'PATIENT', identifier: {} })).matches).toHaveLength(4);
    });
  });

  // Last on purpose: it adds a study (in a department of its own) after the counts above.
  describe('empty stored values', () => {
    it('are returned without Value and never match a range', async () => {
      const [c] = await db('departments').insert({ name: 'C' }).returning('id');
      const readerC = user('rc', [{ departmentId: Number(c.id), role: 'reader' }]);
      const attrs = { '00080020': { vr: 'DA', Value: [''] }, '00100010': { vr: 'PN', Value: [{}] }, '00100020': { vr: 'LO', Value: [''] }, '00081032': { vr: 'SQ', Value: [] } };
      await db('studies').insert({ study_uid: '1.2.3.7', department_id: c.id, patient_id: '', patient_name: '', study_date: '', study_time: '', attributes: JSON.stringify(attrs) });
      const [m] = (await find(readerC, { identifier: key('00081032', 'SQ') })).matches;
      expect(m['00080020']).toEqual({ vr: 'DA' });
      expect(m['00100010']).toEqual({ vr: 'PN' });
      expect(m['00100020']).toEqual({ vr: 'LO' });
      expect(m['00081032']).toEqual({ vr: 'SQ' });
      expect(m['00201206']).toEqual({ vr: 'IS', Value: [0] });
      expect(await studies(key('00080020', 'DA', '-20991231'), readerC)).toEqual([]);
      expect(await studies(key('00080030', 'TM', '-2359'), readerC)).toEqual([]);
      expect(await studies(key('00080020', 'DA', ''), readerC)).toEqual(['1.2.3.7']);
      const [p] = (await find(readerC, { level: 'PATIENT', identifier: {} })).matches;
      expect(p['00100020']).toEqual({ vr: 'LO' });
      expect(p['00201200']).toEqual({ vr: 'IS', Value: [1] });
    });
  });
});

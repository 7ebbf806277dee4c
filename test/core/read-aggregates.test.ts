// Issue 13 item 3: the per-study and per-series aggregates of migration 006 (counts,
// modalities, SOP classes) are right after every writer — ingest, delete of an instance,
// a series and a study, rows inserted by hand, a restore from a backup snapshot, and the
// migration's own backfill of an archive written before it — on PGlite and on
// PostgreSQL. And the stored read columns (qido_attributes, metadata_json) give the
// same answers as the JSON they were made from.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETURN_KEYS, KEYS, knownLevel } from '../../src/core/dicom/query-keys.js';
import { metadataText } from '../../src/core/dicom/metadata-text.js';
import { normalizeDicomJson } from '../../src/core/dicom/json-normalize.js';
import type { DicomJson } from '../../src/core/dicom/json.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { restoreWriter, withSnapshot } from '../../src/db/backup.repo.js';
import { migrate, openDb, type Db } from '../../src/db/knex.js';
import { instanceReadColumns, QIDO_INSTANCE_TAGS } from '../../src/db/read-columns.js';
import { reversedLike } from '../../src/db/query.repo.js';
import { bulkDataUrisInText, withBulkDataUris } from '../../src/http/dicomweb/urls.js';
import { createFsBlobStore } from '../../src/storage/fs-store.js';
import { migrations } from '../../migrations/index.js';
import { coreServices, createDepartment, principal } from '../helpers/core.js';
import { databasesUnderTest } from '../helpers/db.js';
import { freshUid, reissue } from '../helpers/dicomweb-data.js';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';

interface Agg { uid: string; n_series: number; n_instances: number; modalities: string[]; sop_classes: string[] }

/** What the stored aggregates say, study by study (series counts inside). */
async function stored(db: Db): Promise<Record<string, Agg & { series: Record<string, number> }>> {
  const out: Record<string, Agg & { series: Record<string, number> }> = {};
  for (const s of (await db.raw('SELECT id, study_uid, n_series, n_instances, modalities, sop_classes FROM studies ORDER BY id')).rows) {
    out[s.study_uid] = { uid: s.study_uid, n_series: s.n_series, n_instances: s.n_instances, modalities: arr(s.modalities), sop_classes: arr(s.sop_classes), series: {} };
    for (const se of (await db.raw('SELECT series_uid, n_instances FROM series WHERE study_id = ?', [s.id])).rows) out[s.study_uid].series[se.series_uid] = se.n_instances;
  }
  return out;
}
/** The same, computed from the rows themselves. */
async function recomputed(db: Db): Promise<Record<string, Agg & { series: Record<string, number> }>> {
  const out: Record<string, Agg & { series: Record<string, number> }> = {};
  const r = await db.raw(`SELECT st.id, st.study_uid,
      (SELECT count(*)::int FROM series se WHERE se.study_id = st.id) AS n_series,
      (SELECT count(*)::int FROM instances i JOIN series se ON se.id = i.series_id WHERE se.study_id = st.id) AS n_instances,
      ARRAY(SELECT DISTINCT se.modality FROM series se WHERE se.study_id = st.id AND se.modality IS NOT NULL ORDER BY 1) AS modalities,
      ARRAY(SELECT DISTINCT i.sop_class_uid FROM instances i JOIN series se ON se.id = i.series_id WHERE se.study_id = st.id ORDER BY 1) AS sop_classes
    FROM studies st ORDER BY st.id`);
  for (const s of r.rows) {
    out[s.study_uid] = { uid: s.study_uid, n_series: s.n_series, n_instances: s.n_instances, modalities: arr(s.modalities), sop_classes: arr(s.sop_classes), series: {} };
    for (const se of (await db.raw('SELECT se.series_uid, (SELECT count(*)::int FROM instances i WHERE i.series_id = se.id) AS n FROM series se WHERE se.study_id = ?', [s.id])).rows) {
      out[s.study_uid].series[se.series_uid] = se.n;
    }
  }
  return out;
}
function arr(v: unknown): string[] {
  if (Array.isArray(v)) return v as string[];
  if (typeof v === 'string') return v === '{}' ? [] : v.slice(1, -1).split(',');
  return [];
}
async function expectConsistent(db: Db) {
  expect(await stored(db)).toEqual(await recomputed(db));
}

describe.each(databasesUnderTest())('read aggregates ($name)', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let blobs: BlobStore;
  let blobDir: string;
  let core: Awaited<ReturnType<typeof coreServices>>;
  let dept: number;
  const admin = principal('root', [], { globalAdmin: true });
  const study = freshUid();
  const ctSeries = freshUid();
  const mrSeries = freshUid();
  const ctSops: string[] = [];
  const mrSops: string[] = [];

  beforeAll(async () => {
    t = await dbu.open();
    blobDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-aggregates-'));
    blobs = await createFsBlobStore(blobDir);
    core = await coreServices(t.db, blobs);
    dept = await createDepartment(t.db, 'Aggregates');
    const writer = principal('writer', [[dept, 'writer']]);
    // Three CT and two MR instances in one study, through the real ingest path.
    for (let i = 0; i < 5; i++) {
      const mr = i >= 3;
      const r = reissue(mr ? 'MR_small.dcm' : 'CT_small.dcm', { study, series: mr ? mrSeries : ctSeries });
      (mr ? mrSops : ctSops).push(r.sop);
      const out = await core.ingest.ingestStream(writer, Readable.from([r.bytes]), { via: 'dicomweb', departmentId: dept });
      expect(out.outcome).toBe('stored');
    }
  }, 120_000);
  afterAll(async () => {
    await core?.deps.close();
    await blobs?.close();
    await t?.close();
    await fs.rm(blobDir, { recursive: true, force: true });
  });

  it('ingest keeps the study and series aggregates', async () => {
    const s = (await stored(t.db))[study];
    expect(s).toMatchObject({ n_series: 2, n_instances: 5, modalities: ['CT', 'MR'], sop_classes: [CT, MR] });
    expect(s.series).toEqual({ [ctSeries]: 3, [mrSeries]: 2 });
    await expectConsistent(t.db);
  });

  it('a duplicate instance changes nothing', async () => {
    const writer = principal('writer', [[dept, 'writer']]);
    const again = reissue('CT_small.dcm', { study, series: ctSeries, sop: ctSops[0] });
    await core.ingest.ingestStream(writer, Readable.from([again.bytes]), { via: 'dicomweb', departmentId: dept }).catch(() => undefined);
    expect((await stored(t.db))[study].n_instances).toBe(5);
    await expectConsistent(t.db);
  });

  it('QIDO answers from the stored aggregates', async () => {
    const r = await core.deps.query.find(admin, { level: 'STUDY', identifier: { '0020000D': { vr: 'UI', Value: [study] }, '00080061': { vr: 'CS', Value: ['MR'] } }, includeFields: ['00201206', '00201208', '00080062'] });
    expect(r.matches).toHaveLength(1);
    const m = r.matches[0];
    expect(m['00201206']?.Value).toEqual([2]);
    expect(m['00201208']?.Value).toEqual([5]);
    expect(m['00080061']?.Value).toEqual(['CT', 'MR']);
    expect(m['00080062']?.Value).toEqual([CT, MR]);
    const series = await core.deps.query.find(admin, { level: 'SERIES', identifier: { '0020000D': { vr: 'UI', Value: [study] } }, includeFields: ['00201209'] });
    expect(Object.fromEntries(series.matches.map((x) => [x['0020000E']?.Value?.[0], x['00201209']?.Value?.[0]]))).toEqual({ [ctSeries]: 3, [mrSeries]: 2 });
    // A study with no MR series does not match ModalitiesInStudy=MR (the stored list says so).
    const none = await core.deps.query.find(admin, { level: 'STUDY', identifier: { '0020000D': { vr: 'UI', Value: [study] }, '00080061': { vr: 'CS', Value: ['US'] } } });
    expect(none.matches).toHaveLength(0);
  });

  it('the backup snapshot restored into an empty database has the same aggregates', async () => {
    const target = await dbu.open();
    try {
      const w = restoreWriter(target.db);
      await withSnapshot(t.db, async (s) => {
        for (const table of await s.tables()) for await (const batch of s.rows(table)) await w.insert(table, batch);
      });
      expect(await stored(target.db)).toEqual(await stored(t.db));
      await expectConsistent(target.db);
    } finally {
      await target.close();
    }
  }, 60_000);

  it('deleting an instance, then a series, recomputes; deleting the study removes its rows', async () => {
    await core.deps.deletion.delete(admin, { studyUid: study, seriesUid: mrSeries, sopInstanceUid: mrSops[0] });
    let s = (await stored(t.db))[study];
    expect(s).toMatchObject({ n_series: 2, n_instances: 4, modalities: ['CT', 'MR'], sop_classes: [CT, MR] });
    await core.deps.deletion.delete(admin, { studyUid: study, seriesUid: mrSeries });
    s = (await stored(t.db))[study];
    expect(s).toMatchObject({ n_series: 1, n_instances: 3, modalities: ['CT'], sop_classes: [CT] });
    expect(s.series).toEqual({ [ctSeries]: 3 });
    await expectConsistent(t.db);
    await core.deps.deletion.delete(admin, { studyUid: study });
    expect((await stored(t.db))[study]).toBeUndefined();
  });

  it('rows inserted by hand, a study deleted by cascade, and several statements at once stay right', async () => {
    const [st] = await t.db('studies').insert({ study_uid: '1.2.3.9', department_id: dept, n_series: 99, n_instances: 99, modalities: ['XX'] }).returning('id');
    const ses = await t.db('series').insert([{ study_id: st.id, series_uid: '1.2.3.9.1', modality: 'CT' }, { study_id: st.id, series_uid: '1.2.3.9.2', modality: 'SR' }, { study_id: st.id, series_uid: '1.2.3.9.3', modality: null }]).returning('id');
    const inst = (seriesId: number, n: number, sopClass: string) =>
      Array.from({ length: n }, (_, k) => ({ series_id: seriesId, sop_instance_uid: `1.2.3.9.${seriesId}.${k}`, sop_class_uid: sopClass, transfer_syntax_uid: '1.2.840.10008.1.2.1', object_key: `k/${seriesId}/${k}`, size: 1, sha256: 'x', metadata: '{}' }));
    await t.db('instances').insert([...inst(ses[0].id, 4, CT), ...inst(ses[1].id, 2, '1.2.840.10008.5.1.4.1.1.88.11')]);
    let s = (await stored(t.db))['1.2.3.9'];
    // The values given by hand are not kept: a new row starts from zero.
    expect(s).toMatchObject({ n_series: 3, n_instances: 6, modalities: ['CT', 'SR'] });
    await expectConsistent(t.db);
    // A DELETE that removes instances of two series at once.
    await t.db('instances').whereIn('sop_instance_uid', [`1.2.3.9.${ses[0].id}.0`, `1.2.3.9.${ses[1].id}.0`, `1.2.3.9.${ses[1].id}.1`]).del();
    s = (await stored(t.db))['1.2.3.9'];
    expect(s).toMatchObject({ n_series: 3, n_instances: 3, sop_classes: [CT] });
    await expectConsistent(t.db);
    // ON DELETE CASCADE from the study: the triggers of the cascaded deletes must not fail.
    await t.db('studies').where({ id: st.id }).del();
    expect(Number((await t.db('series').where({ study_id: st.id }).count('* as n'))[0].n)).toBe(0);
    await expectConsistent(t.db);
  });
});

describe.each(databasesUnderTest())('migration 006 backfill ($name)', (dbu) => {
  it('fills the aggregates and read columns of rows written before it', async () => {
    // A database migrated only to 005: the archive of an older release.
    const db = await openDb(dbu.name === 'postgres' ? { url: await freshPostgres() } : {});
    try {
      const source = { getMigrations: async () => migrations.slice(0, 5), getMigrationName: (m: (typeof migrations)[number]) => m.name, getMigration: async (m: (typeof migrations)[number]) => m };
      await db.migrate.latest({ migrationSource: source });
      const [d] = await db('departments').insert({ name: 'Old' }).returning('id');
      const [st] = await db('studies').insert({ study_uid: '1.2.5', department_id: d.id }).returning('id');
      const [se] = await db('series').insert({ study_id: st.id, series_uid: '1.2.5.1', modality: 'MR' }).returning('id');
      const md: DicomJson = {
        '00080016': { vr: 'UI', Value: [MR] },
        '00280100': { vr: 'US', Value: [16] },
        '00100010': { vr: 'PN', Value: [''] }, // stored before ingest normalized (F.2.5: no Value)
        '7FE00010': { vr: 'OW', BulkDataURI: 'bulkdata/7FE00010' },
      };
      await db('instances').insert({ series_id: se.id, sop_instance_uid: '1.2.5.1.1', sop_class_uid: MR, transfer_syntax_uid: '1.2.840.10008.1.2.1', object_key: 'old/1', size: 1, sha256: 'x', metadata: JSON.stringify(md) });
      await migrate(db);
      await expectConsistent(db);
      expect((await stored(db))['1.2.5']).toMatchObject({ n_series: 1, n_instances: 1, modalities: ['MR'], sop_classes: [MR] });
      const row = await db('instances').where({ sop_instance_uid: '1.2.5.1.1' }).first();
      expect(typeof row.qido_attributes === 'string' ? JSON.parse(row.qido_attributes) : row.qido_attributes).toEqual({ '00080016': md['00080016'], '00280100': md['00280100'] });
      expect(JSON.parse(row.metadata_json)).toEqual(JSON.parse(metadataText(md)));
      expect(JSON.parse(row.metadata_json)['00100010']).toEqual({ vr: 'PN' });
    } finally {
      await db.destroy();
      await dropPostgres();
    }
  }, 60_000);
});

let scratch: string | undefined;
async function freshPostgres(): Promise<string> {
  const admin = await openDb({ url: process.env.TEST_DATABASE_URL! });
  scratch = `tresor_test_m006_${process.pid}`;
  await admin.raw('DROP DATABASE IF EXISTS ?? WITH (FORCE)', [scratch]);
  await admin.raw('CREATE DATABASE ??', [scratch]);
  await admin.destroy();
  const u = new URL(process.env.TEST_DATABASE_URL!);
  u.pathname = `/${scratch}`;
  return u.toString();
}
async function dropPostgres(): Promise<void> {
  if (!scratch) return;
  const admin = await openDb({ url: process.env.TEST_DATABASE_URL! });
  await admin.raw('DROP DATABASE IF EXISTS ?? WITH (FORCE)', [scratch]);
  await admin.destroy();
  scratch = undefined;
}

describe('stored read columns', () => {
  it('QIDO_INSTANCE_TAGS are the instance keys an IMAGE-level search returns by default', () => {
    const expected = DEFAULT_RETURN_KEYS.IMAGE.filter((t) => !KEYS.get(t)?.computed && knownLevel(t) !== 'study' && knownLevel(t) !== 'series' && knownLevel(t) !== 'patient');
    expect([...QIDO_INSTANCE_TAGS].sort()).toEqual([...expected].sort());
  });

  it('the stored /metadata text with its links is the per-row rendering, whatever the values say', () => {
    const tricky = 'a "BulkDataURI":"bulkdata/7FE00010" in a value \\ and "quotes"';
    const md: DicomJson = {
      '00081030': { vr: 'LO', Value: [tricky] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] },
      '00080008': { vr: 'CS', Value: ['ORIGINAL', ''] },
      '00540016': { vr: 'SQ', Value: [{ '00181074': { vr: 'OB', BulkDataURI: 'bulkdata/00540016/1/00181074' } }, {}] },
      '00420011': { vr: 'OB', BulkDataURI: 'http://elsewhere/evil' },
      '7FE00010': { vr: 'OW', BulkDataURI: 'bulkdata/7FE00010' },
    };
    for (const base of ['/dicomweb/studies/1/series/2/instances/3', 'https://pacs.example/a"b\\c/dicomweb/studies/1/series/2/instances/3']) {
      const fast = JSON.parse(bulkDataUrisInText(metadataText(md), base));
      const slow = withBulkDataUris(normalizeDicomJson(md), base);
      expect(fast).toEqual(slow);
      expect(fast['7FE00010'].BulkDataURI).toBe(`${base}/bulkdata/7FE00010`);
      expect(fast['00081030'].Value).toEqual([tricky]);
      expect(fast['00420011']).toEqual({ vr: 'OB' });
    }
    expect(instanceReadColumns(md).qido_attributes).toBe('{}');
  });

  it('a leading-wildcard pattern is turned around for the reversed-name index', () => {
    expect(reversedLike('%SON')).toBe('NOS%');
    expect(reversedLike('%a\\_b')).toBe('b\\_a%');
    expect(reversedLike('%S_N')).toBeUndefined();
    expect(reversedLike('SO%')).toBeUndefined();
    expect(reversedLike('%')).toBeUndefined();
    expect(reversedLike('%ab%')).toBeUndefined();
  });
});

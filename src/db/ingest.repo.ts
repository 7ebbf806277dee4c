import type { IngestRepo, InsertOutcome, NewInstance } from '../core/ingest.js';
import type { Db } from './knex.js';

const clean = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

export function createIngestRepo(db: Db): IngestRepo {
  return {
    async studyDepartment(studyUid) {
      const r = await db('studies').select('department_id').where({ study_uid: studyUid }).first();
      return r ? Number(r.department_id) : null;
    },
    async instanceSha256(uid) {
      const r = await db('instances').select('sha256').where({ sop_instance_uid: uid }).first();
      return r ? String(r.sha256) : null;
    },
    async journal(key) {
      await db('blob_journal').insert({ object_key: key, reason: 'ingest' });
    },
    async unjournal(key) {
      await db('blob_journal').where({ object_key: key }).del();
    },
    async insert(n: NewInstance): Promise<InsertOutcome> {
      try {
        return await insertTx(db, n);
      } catch (e) {
        // Rolled back on purpose: nothing of this instance (not even a new empty study) stays.
        if (e instanceof Outcome) return e.outcome;
        throw e;
      }
    },
  };
}

/** Thrown inside the transaction to roll it back with a result. */
class Outcome extends Error {
  constructor(readonly outcome: InsertOutcome) {
    super(outcome.result);
  }
}

function insertTx(db: Db, n: NewInstance): Promise<InsertOutcome> {
  return db.transaction(async (trx) => {
    // INSERT … ON CONFLICT DO NOTHING, then read: concurrent ingests of the same
    // study/series/instance from several connections all end up with one row.
    await trx('studies')
      .insert({ study_uid: n.study.uid, department_id: n.departmentId, attributes: JSON.stringify(n.study.attributes), ...clean(n.study.columns) })
      .onConflict('study_uid')
      .ignore();
    const study = await trx('studies').select('id', 'department_id').where({ study_uid: n.study.uid }).forUpdate().first();
    if (Number(study.department_id) !== n.departmentId) throw new Outcome({ result: 'conflict', reason: 'study-in-other-department' });

    await trx('series')
      .insert({ study_id: study.id, series_uid: n.series.uid, attributes: JSON.stringify(n.series.attributes), ...clean(n.series.columns) })
      .onConflict('series_uid')
      .ignore();
    const series = await trx('series').select('id', 'study_id').where({ series_uid: n.series.uid }).first();
    if (Number(series.study_id) !== Number(study.id)) throw new Outcome({ result: 'conflict', reason: 'series-in-other-study' });

    const i = n.instance;
    const inserted = await trx('instances')
      .insert({
        series_id: series.id,
        sop_instance_uid: i.sopInstanceUid,
        sop_class_uid: i.sopClassUid,
        instance_number: i.instanceNumber ?? null,
        transfer_syntax_uid: i.transferSyntaxUid,
        object_key: i.objectKey,
        size: i.size,
        sha256: i.sha256,
        rows: i.rows ?? null,
        columns: i.columns ?? null,
        number_of_frames: i.numberOfFrames ?? null,
        metadata: JSON.stringify(i.metadata),
      })
      .onConflict('sop_instance_uid')
      .ignore()
      .returning('id');
    if (inserted.length === 0) {
      const existing = await trx('instances').select('sha256').where({ sop_instance_uid: i.sopInstanceUid }).first();
      throw new Outcome(existing?.sha256 === i.sha256 ? { result: 'duplicate' } : { result: 'conflict', reason: 'sop-instance-conflict' });
    }
    await trx('studies').where({ id: study.id }).update({ updated_at: trx.fn.now() });
    // The blob is now referenced: no longer the sweeper's business.
    await trx('blob_journal').where({ object_key: i.objectKey }).del();
    return { result: 'inserted' } as InsertOutcome;
  });
}

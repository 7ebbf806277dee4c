import type { IngestRepo, InsertOutcome, NewInstance } from '../core/ingest.js';
import type { Db } from './knex.js';
import { instanceReadColumns } from './read-columns.js';

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
  // Three statements (each a round trip; on the embedded database each also waits for
  // the one connection), so a commit costs as little as the rows need (issue 13).
  return db.transaction(async (trx) => {
    // Upsert that always returns the row and locks it (DO UPDATE): concurrent ingests of
    // the same study from several connections end up with one row, serialised on it.
    // updated_at moves with every instance added.
    const [study] = await trx('studies')
      .insert({ study_uid: n.study.uid, department_id: n.departmentId, attributes: JSON.stringify(n.study.attributes), ...clean(n.study.columns) })
      .onConflict('study_uid')
      .merge({ updated_at: trx.fn.now() })
      .returning(['id', 'department_id']);
    if (Number(study.department_id) !== n.departmentId) throw new Outcome({ result: 'conflict', reason: 'study-in-other-department' });

    // The no-op update only makes the existing row come back (ON CONFLICT DO NOTHING returns nothing).
    const [series] = await trx('series')
      .insert({ study_id: study.id, series_uid: n.series.uid, attributes: JSON.stringify(n.series.attributes), ...clean(n.series.columns) })
      .onConflict('series_uid')
      .merge(['series_uid'])
      .returning(['id', 'study_id']);
    if (Number(series.study_id) !== Number(study.id)) throw new Outcome({ result: 'conflict', reason: 'series-in-other-study' });

    const i = n.instance;
    // The blob is referenced once this commits: its journal entry goes in the same
    // statement (rolled back with everything else when the instance is a duplicate).
    const inserted = await trx('instances')
      .with('unjournal', trx.raw('DELETE FROM blob_journal WHERE object_key = ?', [i.objectKey]))
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
        ...instanceReadColumns(i.metadata),
      })
      .onConflict('sop_instance_uid')
      .ignore()
      .returning('id');
    if (inserted.length === 0) {
      const existing = await trx('instances').select('sha256').where({ sop_instance_uid: i.sopInstanceUid }).first();
      throw new Outcome(existing?.sha256 === i.sha256 ? { result: 'duplicate' } : { result: 'conflict', reason: 'sop-instance-conflict' });
    }
    return { result: 'inserted' } as InsertOutcome;
  });
}

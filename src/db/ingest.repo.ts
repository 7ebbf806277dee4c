import type { IngestRepo, InsertOutcome, NewInstance } from '../core/ingest.js';
import type { Knex } from 'knex';
import { prepared, type Db } from './knex.js';
import { instanceReadColumns } from './read-columns.js';

/** An attribute the object does not carry is NULL (no column below has another default): the same columns, and so the same statement text, for every instance. */
const nullable = <T extends object>(o: T): { [K in keyof T]: T[K] | null } => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v ?? null])) as { [K in keyof T]: T[K] | null };

export function createIngestRepo(db: Db): IngestRepo {
  return {
    async lookup({ studyUid, sopInstanceUid, journalKey }) {
      // A data-modifying CTE runs whether or not the query reads it: the journal entry
      // commits with this one autocommit statement (issue 13: one round trip, not three).
      const { rows } = await prepared(
        db.raw(
          `WITH j AS (INSERT INTO blob_journal (object_key, reason) VALUES (?, 'ingest'))
           SELECT (SELECT department_id FROM studies WHERE study_uid = ?) AS department_id,
                  (SELECT sha256 FROM instances WHERE sop_instance_uid = ?) AS sha256`,
          [journalKey, studyUid, sopInstanceUid],
        ),
        'tresor_ingest_lookup',
      );
      const r = rows[0] as { department_id: string | number | null; sha256: string | null };
      return { studyDepartment: r.department_id === null ? null : Number(r.department_id), instanceSha256: r.sha256 === null ? null : String(r.sha256) };
    },
    async journal(key) {
      await db('blob_journal').insert({ object_key: key, reason: 'ingest' });
    },
    async unjournal(key) {
      await db('blob_journal').where({ object_key: key }).del();
    },
    async insert(n: NewInstance): Promise<InsertOutcome> {
      // The common case (a new instance of a new or same-department study) in one
      // statement; anything else, including a race, in the transaction that tells why.
      if (await insertOneStatement(db, n)) return { result: 'inserted' };
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

/**
 * The rows of a new instance, by table, in one place: the single statement and the
 * transaction below write exactly these columns, always all of them (a value the object
 * lacks is NULL), in the order of buildRow in core/ingest.ts.
 */
function rowsOf(n: NewInstance): { study: Record<string, unknown>; series: Record<string, unknown>; instance: Record<string, unknown> } {
  const i = n.instance;
  return {
    study: { study_uid: n.study.uid, department_id: n.departmentId, attributes: JSON.stringify(n.study.attributes), ...nullable(n.study.columns) },
    series: { series_uid: n.series.uid, attributes: JSON.stringify(n.series.attributes), ...nullable(n.series.columns) },
    instance: {
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
      // The read columns (issue 13 item 3): QIDO's instance keys and the /metadata text.
      ...instanceReadColumns(i.metadata),
    },
  };
}

/** `(?? , ?? …)` and `(? , ? …)` with their bindings, for an INSERT … VALUES of `row`. */
function valuesOf(row: Record<string, unknown>): { cols: string; vals: string; names: string[]; values: Knex.Value[] } {
  const names = Object.keys(row);
  return { cols: names.map(() => '??').join(', '), vals: names.map(() => '?').join(', '), names, values: Object.values(row) as Knex.Value[] };
}

/** Thrown by PostgreSQL for the deliberate 1/0 below: "not the simple case, roll back". */
const DIVISION_BY_ZERO = '22012';
/** A NULL series_id or study_id: the study or series upsert returned no row (other department, other study). */
const NOT_NULL_VIOLATION = '23502';

/**
 * Study upsert, series upsert, instance insert and the journal entry's removal as ONE
 * autocommit statement (one round trip, one commit; on the embedded database one turn of
 * its single connection). True when the instance was inserted. Every other case — the
 * study is another department's, the series another study's, the SOP Instance UID is
 * taken — makes the statement fail on purpose (a NULL into a NOT NULL column, or 1/0),
 * so that it rolls back whole and nothing of it (not even a new empty study) stays; the
 * caller then takes the transaction, which finds out which case it is.
 */
let insertText: string | undefined;

async function insertOneStatement(db: Db, n: NewInstance): Promise<boolean> {
  const r = rowsOf(n);
  const st = valuesOf(r.study);
  const se = valuesOf(r.series);
  const ins = valuesOf(r.instance);
  const sql = `
    WITH st AS (
      INSERT INTO studies (${st.cols}) VALUES (${st.vals})
      ON CONFLICT (study_uid) DO UPDATE SET updated_at = now() WHERE studies.department_id = EXCLUDED.department_id
      RETURNING id
    ), se AS (
      INSERT INTO series (study_id, ${se.cols}) VALUES ((SELECT id FROM st), ${se.vals})
      ON CONFLICT (series_uid) DO UPDATE SET series_uid = EXCLUDED.series_uid WHERE series.study_id = EXCLUDED.study_id
      RETURNING id
    ), ins AS (
      INSERT INTO instances (series_id, ${ins.cols}) VALUES ((SELECT id FROM se), ${ins.vals})
      ON CONFLICT (sop_instance_uid) DO NOTHING
      RETURNING id
    ), unjournal AS (
      DELETE FROM blob_journal WHERE object_key = ? AND EXISTS (SELECT 1 FROM ins)
    )
    SELECT 1 / (SELECT count(*)::int FROM ins) AS inserted`;
  try {
    // Named only while its text is the one every instance uses (the columns of rowsOf);
    // a statement name must never stand for two texts.
    const raw = db.raw(sql, [...st.names, ...st.values, ...se.names, ...se.values, ...ins.names, ...ins.values, n.instance.objectKey]);
    const text = [sql, ...st.names, ...se.names, ...ins.names].join('\0');
    await (text === (insertText ??= text) ? prepared(raw, 'tresor_ingest_insert') : raw);
    return true;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === DIVISION_BY_ZERO || code === NOT_NULL_VIOLATION) return false;
    throw e;
  }
}

/** Thrown inside the transaction to roll it back with a result. */
class Outcome extends Error {
  constructor(readonly outcome: InsertOutcome) {
    super(outcome.result);
  }
}

function insertTx(db: Db, n: NewInstance): Promise<InsertOutcome> {
  const r = rowsOf(n);
  return db.transaction(async (trx) => {
    // Upsert that always returns the row and locks it (DO UPDATE): concurrent ingests of
    // the same study from several connections end up with one row, serialised on it.
    // updated_at moves with every instance added.
    const [study] = await trx('studies').insert(r.study).onConflict('study_uid').merge({ updated_at: trx.fn.now() }).returning(['id', 'department_id']);
    if (Number(study.department_id) !== n.departmentId) throw new Outcome({ result: 'conflict', reason: 'study-in-other-department' });

    // The no-op update only makes the existing row come back (ON CONFLICT DO NOTHING returns nothing).
    const [series] = await trx('series')
      .insert({ study_id: study.id, ...r.series })
      .onConflict('series_uid')
      .merge(['series_uid'])
      .returning(['id', 'study_id']);
    if (Number(series.study_id) !== Number(study.id)) throw new Outcome({ result: 'conflict', reason: 'series-in-other-study' });

    // The blob is referenced once this commits: its journal entry goes in the same
    // statement (rolled back with everything else when the instance is a duplicate).
    const inserted = await trx('instances')
      .with('unjournal', trx.raw('DELETE FROM blob_journal WHERE object_key = ?', [n.instance.objectKey]))
      .insert({ series_id: series.id, ...r.instance })
      .onConflict('sop_instance_uid')
      .ignore()
      .returning('id');
    if (inserted.length === 0) {
      const existing = await trx('instances').select('sha256').where({ sop_instance_uid: n.instance.sopInstanceUid }).first();
      throw new Outcome(existing?.sha256 === n.instance.sha256 ? { result: 'duplicate' } : { result: 'conflict', reason: 'sop-instance-conflict' });
    }
    return { result: 'inserted' } as InsertOutcome;
  });
}

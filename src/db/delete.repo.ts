import type { DeleteRepo, DeleteRequest } from '../core/delete.js';
import type { Db } from './knex.js';

/** Instances of the target, joined up to the study so a series or instance named under the wrong study is absent. */
function targetInstances(q: Db, req: DeleteRequest) {
  const b = q('instances as i').join('series as se', 'se.id', 'i.series_id').join('studies as st', 'st.id', 'se.study_id').where('st.study_uid', req.studyUid);
  if (req.seriesUid) b.where('se.series_uid', req.seriesUid);
  if (req.sopInstanceUid) b.where('i.sop_instance_uid', req.sopInstanceUid);
  return b;
}

export function createDeleteRepo(db: Db): DeleteRepo {
  return {
    async forget(key) {
      await db('blob_journal').where({ object_key: key }).del();
    },
    async locate(req) {
      // A study row without instances is not a target either.
      const r = await targetInstances(db, req).select('st.department_id').first();
      return r ? { departmentId: Number(r.department_id) } : null;
    },
    deleteRows(req) {
      return db.transaction(async (trx) => {
        // Lock the study row first: ingest locks it too (ingest.repo.ts), so an
        // instance arriving for this study waits and then finds a consistent state.
        const study = await trx('studies').select('id').where({ study_uid: req.studyUid }).forUpdate().first();
        if (!study) return [];
        const rows: { id: number; object_key: string; series_id: number }[] = await targetInstances(trx, req).select('i.id', 'i.object_key', 'i.series_id').forUpdate();
        if (rows.length === 0) return [];
        const ids = rows.map((r) => r.id);
        for (let k = 0; k < ids.length; k += 1000) await trx('instances').whereIn('id', ids.slice(k, k + 1000)).del();
        const seriesIds = [...new Set(rows.map((r) => Number(r.series_id)))];
        for (let k = 0; k < seriesIds.length; k += 1000) {
          await trx('series')
            .whereIn('id', seriesIds.slice(k, k + 1000))
            .whereNotExists(trx('instances').select(trx.raw('1')).whereRaw('instances.series_id = series.id'))
            .del();
        }
        await trx('studies')
          .where({ id: study.id })
          .whereNotExists(trx('series').select(trx.raw('1')).whereRaw('series.study_id = studies.id'))
          .del();
        await trx('studies').where({ id: study.id }).update({ updated_at: trx.fn.now() });
        const keys = rows.map((r) => r.object_key);
        // Durable until each blob is gone (core/blob-journal.ts sweeps what a crash leaves).
        for (let k = 0; k < keys.length; k += 1000) {
          await trx('blob_journal')
            .insert(keys.slice(k, k + 1000).map((object_key) => ({ object_key, reason: 'delete' })))
            .onConflict('object_key')
            .merge({ reason: 'delete' });
        }
        return keys;
      });
    },
  };
}

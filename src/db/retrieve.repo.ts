import type { RetrieveRepo, StoredInstance } from '../core/retrieve.js';
import type { Db } from './knex.js';

/** Rows, Columns, Samples per Pixel, Bits Allocated, Number of Frames, Pixel Data (pixel-bounds.ts shapeOfMetadata). */
const PIXEL_SHAPE_TAGS = ['00280010', '00280011', '00280002', '00280100', '00280008', '7FE00010'];

export function createRetrieveRepo(db: Db): RetrieveRepo {
  return {
    async list(s, req, opts) {
      const q = db('instances as i')
        .join('series as se', 'se.id', 'i.series_id')
        .join('studies as st', 'st.id', 'se.study_id')
        .select(
          'st.study_uid',
          'st.department_id',
          'se.series_uid',
          'i.sop_instance_uid',
          'i.sop_class_uid',
          'i.transfer_syntax_uid',
          'i.size',
          'i.sha256',
          'i.instance_number',
          'i.number_of_frames',
          'i.object_key',
          ...(opts.withMetadata
            ? ['i.metadata']
            : opts.withMetadataText
              ? // The stored rendering (migration 006); the JSON only for a row without one.
                ['i.metadata_json', db.raw('CASE WHEN i.metadata_json IS NULL THEN i.metadata END AS metadata')]
              : opts.withPixelShape
                ? [db.raw(`jsonb_build_object(${PIXEL_SHAPE_TAGS.map((t) => `'${t}', i.metadata->'${t}'`).join(', ')}) as metadata`)]
                : []),
        )
        .orderBy([{ column: 'st.study_uid' }, { column: 'se.series_number' }, { column: 'se.series_uid' }, { column: 'i.instance_number' }, { column: 'i.sop_instance_uid' }])
        .limit(opts.limit);
      // The scope is the only authorization filter (core/access.ts decides it).
      if (!s.all) q.whereIn('st.department_id', s.departmentIds as number[]);
      if (req.patientId) q.where('st.patient_id', req.patientId);
      if (req.studyUids?.length) q.whereIn('st.study_uid', req.studyUids);
      if (req.seriesUids?.length) q.whereIn('se.series_uid', req.seriesUids);
      if (req.sopInstanceUids?.length) q.whereIn('i.sop_instance_uid', req.sopInstanceUids);
      const rows = await q;
      return rows.map(
        (r: any): StoredInstance => ({
          studyUid: r.study_uid,
          seriesUid: r.series_uid,
          sopInstanceUid: r.sop_instance_uid,
          sopClassUid: r.sop_class_uid,
          transferSyntaxUid: r.transfer_syntax_uid,
          size: Number(r.size),
          sha256: r.sha256,
          departmentId: Number(r.department_id),
          instanceNumber: r.instance_number ?? null,
          numberOfFrames: r.number_of_frames ?? null,
          metadata: r.metadata ?? {},
          ...(typeof r.metadata_json === 'string' ? { metadataText: r.metadata_json } : {}),
          objectKey: r.object_key,
        }),
      );
    },
  };
}

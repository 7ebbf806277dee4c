// Issue 13 item 3: reads stay flat with archive size.
// - Per-study and per-series aggregates (counts, modalities, SOP classes: the computed
//   QIDO keys of PS3.18 Table 10.6.3-3/-4, PS3.4 C.6.1.1.3/C.6.1.1.4) kept on the rows
//   instead of recomputed by four subqueries per study on every page. Maintained by
//   statement-level triggers with transition tables (one UPDATE per statement, however
//   many rows it inserts or deletes), so every writer keeps them right: ingest, delete,
//   a restore from backup, and rows inserted by hand. Inserts add to them; deletes
//   recompute the studies and series they touched. A new studies/series row always starts
//   from zero (a BEFORE INSERT trigger): a restore inserts study rows with the values of
//   the backup and then their instances, which add them up again.
//   Concurrency: ingest and delete lock the study row first (ingest.repo.ts,
//   delete.repo.ts), so the triggers of two transactions on one study never interleave.
//   Not maintained: a change of series.modality by UPDATE (no code path does one).
// - instances.qido_attributes: the instance keys an IMAGE-level QIDO returns
//   (db/read-columns.ts), so a search does not open each instance's whole metadata.
// - instances.metadata_json: the /metadata rendering of the instance, serialized once
//   (core/dicom/metadata-text.ts). NULL means "not computed": readers fall back to metadata.
// - Indexes: studies (department_id, id) for a department's page in id order; series
//   (modality, study_id) for ModalitiesInStudy; patient_name with text_pattern_ops for
//   trailing wildcards and reverse(patient_name) for leading ones (the database collation
//   is not C, so the plain index cannot serve LIKE). reverse() and text_pattern_ops are core
//   PostgreSQL (no extension, unlike pg_trgm, which PGlite would have to load): the same
//   migration runs on PostgreSQL and on PGlite.

import type { Knex } from 'knex';
import { instanceReadColumns, QIDO_INSTANCE_TAGS } from '../src/db/read-columns.js';

export const name = '006-read-aggregates';

const BACKFILL_BATCH = 500;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE studies
    ADD COLUMN n_series integer NOT NULL DEFAULT 0,
    ADD COLUMN n_instances integer NOT NULL DEFAULT 0,
    ADD COLUMN modalities text[] NOT NULL DEFAULT '{}',
    ADD COLUMN sop_classes text[] NOT NULL DEFAULT '{}'`);
  await knex.raw(`ALTER TABLE series ADD COLUMN n_instances integer NOT NULL DEFAULT 0`);
  await knex.raw(`ALTER TABLE instances ADD COLUMN qido_attributes jsonb, ADD COLUMN metadata_json text`);

  // Recomputes the aggregates of these studies from their series (whose counts are current).
  await knex.raw(`
    CREATE FUNCTION tresor_refresh_studies(ids bigint[]) RETURNS void LANGUAGE sql AS $$
      UPDATE studies st SET
        n_series = (SELECT count(*) FROM series se WHERE se.study_id = st.id),
        n_instances = (SELECT COALESCE(sum(se.n_instances), 0) FROM series se WHERE se.study_id = st.id),
        modalities = ARRAY(SELECT DISTINCT se.modality FROM series se WHERE se.study_id = st.id AND se.modality IS NOT NULL ORDER BY 1),
        sop_classes = ARRAY(SELECT DISTINCT i.sop_class_uid FROM instances i JOIN series se ON se.id = i.series_id WHERE se.study_id = st.id ORDER BY 1)
      WHERE st.id = ANY(ids)
    $$`);
  await knex.raw(`
    CREATE FUNCTION tresor_refresh_series(ids bigint[]) RETURNS void LANGUAGE sql AS $$
      UPDATE series se SET n_instances = (SELECT count(*) FROM instances i WHERE i.series_id = se.id) WHERE se.id = ANY(ids)
    $$`);

  await knex.raw(`
    CREATE FUNCTION tresor_aggregates_start_at_zero() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.n_instances := 0;
      IF TG_TABLE_NAME = 'studies' THEN
        NEW.n_series := 0;
        NEW.modalities := '{}';
        NEW.sop_classes := '{}';
      END IF;
      RETURN NEW;
    END $$`);
  await knex.raw(`CREATE TRIGGER studies_aggregates_start BEFORE INSERT ON studies FOR EACH ROW EXECUTE FUNCTION tresor_aggregates_start_at_zero()`);
  await knex.raw(`CREATE TRIGGER series_aggregates_start BEFORE INSERT ON series FOR EACH ROW EXECUTE FUNCTION tresor_aggregates_start_at_zero()`);

  await knex.raw(`
    CREATE FUNCTION tresor_series_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE studies st SET
        n_series = st.n_series + d.n,
        modalities = ARRAY(SELECT DISTINCT m FROM unnest(st.modalities || d.modalities) AS u(m) WHERE m IS NOT NULL ORDER BY 1)
      FROM (SELECT study_id, count(*)::integer AS n, array_agg(modality) AS modalities FROM new_series GROUP BY study_id) d
      WHERE st.id = d.study_id;
      RETURN NULL;
    END $$`);
  await knex.raw(`CREATE TRIGGER series_aggregates_insert AFTER INSERT ON series REFERENCING NEW TABLE AS new_series
    FOR EACH STATEMENT EXECUTE FUNCTION tresor_series_inserted()`);

  await knex.raw(`
    CREATE FUNCTION tresor_series_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM tresor_refresh_studies(ARRAY(SELECT DISTINCT study_id FROM old_series));
      RETURN NULL;
    END $$`);
  await knex.raw(`CREATE TRIGGER series_aggregates_delete AFTER DELETE ON series REFERENCING OLD TABLE AS old_series
    FOR EACH STATEMENT EXECUTE FUNCTION tresor_series_deleted()`);

  await knex.raw(`
    CREATE FUNCTION tresor_instances_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE series se SET n_instances = se.n_instances + d.n
      FROM (SELECT series_id, count(*)::integer AS n FROM new_instances GROUP BY series_id) d
      WHERE se.id = d.series_id;
      UPDATE studies st SET
        n_instances = st.n_instances + d.n,
        sop_classes = ARRAY(SELECT DISTINCT c FROM unnest(st.sop_classes || d.classes) AS u(c) ORDER BY 1)
      FROM (SELECT se.study_id, count(*)::integer AS n, array_agg(DISTINCT ni.sop_class_uid) AS classes
            FROM new_instances ni JOIN series se ON se.id = ni.series_id GROUP BY se.study_id) d
      WHERE st.id = d.study_id;
      RETURN NULL;
    END $$`);
  await knex.raw(`CREATE TRIGGER instances_aggregates_insert AFTER INSERT ON instances REFERENCING NEW TABLE AS new_instances
    FOR EACH STATEMENT EXECUTE FUNCTION tresor_instances_inserted()`);

  await knex.raw(`
    CREATE FUNCTION tresor_instances_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE touched bigint[] := ARRAY(SELECT DISTINCT series_id FROM old_instances);
    BEGIN
      PERFORM tresor_refresh_series(touched);
      PERFORM tresor_refresh_studies(ARRAY(SELECT DISTINCT study_id FROM series WHERE id = ANY(touched)));
      RETURN NULL;
    END $$`);
  await knex.raw(`CREATE TRIGGER instances_aggregates_delete AFTER DELETE ON instances REFERENCING OLD TABLE AS old_instances
    FOR EACH STATEMENT EXECUTE FUNCTION tresor_instances_deleted()`);

  // Backfill: series first (the studies' instance counts are their sum).
  await knex.raw(`SELECT tresor_refresh_series(ARRAY(SELECT id FROM series))`);
  await knex.raw(`SELECT tresor_refresh_studies(ARRAY(SELECT id FROM studies))`);
  await knex.raw(
    `UPDATE instances i SET qido_attributes = (SELECT COALESCE(jsonb_object_agg(md.k, md.v), '{}'::jsonb) FROM jsonb_each(i.metadata) AS md(k, v) WHERE md.k = ANY(?::text[]))`,
    [`{${QIDO_INSTANCE_TAGS.join(',')}}`],
  );
  // metadata_json is made by the same code as at ingest (normalization is JavaScript), in batches.
  for (let last = 0; ; ) {
    const rows: { id: string; metadata: unknown }[] = (
      await knex.raw('SELECT id, metadata FROM instances WHERE id > ? ORDER BY id LIMIT ?', [last, BACKFILL_BATCH])
    ).rows;
    if (rows.length === 0) break;
    const values = rows.map((r) => ({ id: Number(r.id), text: instanceReadColumns(typeof r.metadata === 'string' ? JSON.parse(r.metadata) : (r.metadata as object)).metadata_json }));
    await knex.raw(
      `UPDATE instances i SET metadata_json = v.text FROM json_to_recordset(?::json) AS v(id bigint, text text) WHERE i.id = v.id`,
      [JSON.stringify(values)],
    );
    last = values[values.length - 1].id;
  }

  await knex.raw('CREATE INDEX studies_department_id_id_index ON studies (department_id, id)');
  await knex.raw('CREATE INDEX series_modality_study_id_index ON series (modality, study_id)');
  await knex.raw('CREATE INDEX studies_patient_name_pattern_index ON studies (patient_name text_pattern_ops)');
  await knex.raw('CREATE INDEX studies_patient_name_reverse_index ON studies (reverse(patient_name) text_pattern_ops)');
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}

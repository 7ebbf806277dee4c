// The whole data model of ARCHITECTURE.md. Forward-only: never edit a migration
// that has shipped; add the next number instead. Runs unchanged on PostgreSQL
// and on PGlite (embedded PostgreSQL), so only plain PostgreSQL features are used.

import type { Knex } from 'knex';

export const name = '001-initial';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('departments', (t) => {
    t.bigIncrements('id').primary();
    t.text('name').notNullable().unique();
    t.boolean('disabled').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('users', (t) => {
    t.bigIncrements('id').primary();
    t.text('username').notNullable().unique();
    t.text('password_hash').notNullable();
    t.boolean('global_admin').notNullable().defaultTo(false);
    t.boolean('disabled').notNullable().defaultTo(false);
    t.boolean('must_change_password').notNullable().defaultTo(false);
    t.timestamp('password_changed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('devices', (t) => {
    t.bigIncrements('id').primary();
    t.text('ae_title').notNullable().unique();
    // SHA-256 of the DER of the one certificate bound to this device (lowercase hex).
    t.text('cert_fingerprint').unique();
    t.text('cert_serial');
    t.timestamp('cert_not_after', { useTz: true });
    t.text('passcode_hash');
    // Host and port make the device a C-MOVE destination (never taken from a request).
    t.text('host');
    t.integer('port');
    t.boolean('disabled').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  // Fingerprints of certificates that were replaced or revoked: refused even if the CA signed them.
  await knex.schema.createTable('revoked_certificates', (t) => {
    t.text('fingerprint').primary();
    t.bigInteger('device_id').references('devices.id').onDelete('SET NULL');
    t.timestamp('revoked_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('role_bindings', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('user_id').references('users.id').onDelete('CASCADE');
    t.bigInteger('device_id').references('devices.id').onDelete('CASCADE');
    t.bigInteger('department_id').notNullable().references('departments.id').onDelete('CASCADE');
    t.text('role').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE role_bindings ADD CONSTRAINT role_bindings_role_check CHECK (role IN ('reader','writer','admin'))`);
  await knex.raw(`ALTER TABLE role_bindings ADD CONSTRAINT role_bindings_one_holder CHECK ((user_id IS NULL) <> (device_id IS NULL))`);
  await knex.raw(`CREATE UNIQUE INDEX role_bindings_user_uq ON role_bindings (user_id, department_id, role) WHERE user_id IS NOT NULL`);
  await knex.raw(`CREATE UNIQUE INDEX role_bindings_device_uq ON role_bindings (device_id, department_id, role) WHERE device_id IS NOT NULL`);

  // Failed-login counters keyed by account ('user:alice', 'device:CT1') or address ('addr:10.0.0.1').
  // In the database so lockout holds across restarts and several server processes.
  await knex.schema.createTable('lockouts', (t) => {
    t.text('key').primary();
    t.integer('failures').notNullable().defaultTo(0);
    t.timestamp('window_start', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.integer('lock_count').notNullable().defaultTo(0);
    t.timestamp('locked_until', { useTz: true });
  });

  await knex.schema.createTable('studies', (t) => {
    t.bigIncrements('id').primary();
    t.text('study_uid').notNullable().unique();
    t.bigInteger('department_id').notNullable().references('departments.id');
    t.text('patient_id');
    t.text('patient_name');
    t.text('patient_birth_date');
    t.text('patient_sex');
    t.text('study_date');
    t.text('study_time');
    t.text('accession_number');
    t.text('study_id');
    t.text('study_description');
    t.text('referring_physician_name');
    // Study-level attributes as DICOM JSON (PS3.18 F.2), from the first instance.
    t.jsonb('attributes').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['department_id']);
    t.index(['patient_id']);
    t.index(['patient_name']);
    t.index(['study_date']);
    t.index(['accession_number']);
  });

  await knex.schema.createTable('series', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('study_id').notNullable().references('studies.id').onDelete('CASCADE');
    t.text('series_uid').notNullable().unique();
    t.text('modality');
    t.integer('series_number');
    t.text('series_description');
    t.text('series_date');
    t.text('series_time');
    t.text('body_part_examined');
    t.jsonb('attributes').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['study_id']);
    t.index(['modality']);
  });

  await knex.schema.createTable('instances', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('series_id').notNullable().references('series.id').onDelete('CASCADE');
    t.text('sop_instance_uid').notNullable().unique();
    t.text('sop_class_uid').notNullable();
    t.integer('instance_number');
    t.text('transfer_syntax_uid').notNullable();
    t.text('object_key').notNullable().unique();
    t.bigInteger('size').notNullable();
    t.text('sha256').notNullable();
    t.integer('rows');
    t.integer('columns');
    t.integer('number_of_frames');
    // DICOM JSON of the whole dataset without bulk data (PS3.18 F.2); bulk data by BulkDataURI.
    t.jsonb('metadata').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['series_id']);
    t.index(['sop_class_uid']);
  });

  await knex.schema.createTable('audit_events', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('at', { useTz: true }).notNullable();
    t.text('principal_kind').notNullable();
    t.bigInteger('principal_id');
    t.text('principal_name');
    t.text('source');
    t.text('action').notNullable();
    t.text('outcome').notNullable();
    t.specificType('study_uids', 'text[]').notNullable().defaultTo('{}');
    t.jsonb('details').notNullable().defaultTo('{}');
    t.text('prev_hash').notNullable();
    t.text('hash').notNullable().unique();
    t.index(['at']);
    t.index(['action']);
    t.index(['principal_name']);
  });
  await knex.raw(`CREATE INDEX audit_events_study_uids_idx ON audit_events USING GIN (study_uids)`);
  // Append-only: the database itself refuses UPDATE and DELETE on audit rows.
  // (A superuser can still drop the trigger; the hash chain detects that tampering.)
  await knex.raw(`
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$`);
  await knex.raw(`
    CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`);
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}

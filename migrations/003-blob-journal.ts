// A durable record of every blob that may exist without a row: written before an
// ingest uploads (removed in the transaction that inserts the instance) and in the
// transaction that deletes instance rows (removed once the blob is gone). After a
// crash, the sweeper (core/blob-journal.ts) deletes what the journal still names,
// so no object is ever left orphaned in the store.

import type { Knex } from 'knex';

export const name = '003-blob-journal';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('blob_journal', (t) => {
    t.text('object_key').primary();
    t.text('reason').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['created_at']);
  });
  await knex.raw(`ALTER TABLE blob_journal ADD CONSTRAINT blob_journal_reason_check CHECK (reason IN ('ingest','delete'))`);
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}

// Issue 11 (stateless nodes) and issue 14 (tamper-evident audit).
// - node_secrets: the CA, the server certificate and the token signing keys shared by
//   every node on this database; private keys sealed with AES-256-GCM under a key
//   derived from TRESOR_MASTER_KEY_FILE (pki/sealed.ts), never stored in clear here.
// - audit_events.mac: HMAC-SHA256 of each row's hash under a key the database does not
//   hold (core/audit.ts). Rows written before this migration have none: they are legacy
//   rows, verified by the chain only, and audit_meta.legacy_through records where they end.
// - audit_throttle: the per-address budget of audited anonymous refusals, shared by nodes.

import type { Knex } from 'knex';

export const name = '005-node-keys';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('node_secrets', (t) => {
    t.text('purpose').notNullable(); // 'ca' | 'server' | 'token'
    t.text('id').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('public_pem').notNullable(); // certificate (ca, server) or SPKI (token)
    t.text('sealed_key').notNullable(); // base64(nonce ‖ ciphertext ‖ tag)
    t.primary(['purpose', 'id']);
  });
  await knex.raw(`ALTER TABLE node_secrets ADD CONSTRAINT node_secrets_purpose_check CHECK (purpose IN ('ca','server','token'))`);
  await knex.schema.alterTable('audit_events', (t) => {
    t.text('mac');
  });
  await knex.schema.createTable('audit_meta', (t) => {
    t.integer('one').primary().defaultTo(1);
    t.bigInteger('legacy_through').notNullable();
  });
  await knex.raw('ALTER TABLE audit_meta ADD CONSTRAINT audit_meta_one CHECK (one = 1)');
  await knex.raw('INSERT INTO audit_meta (one, legacy_through) SELECT 1, COALESCE(MAX(id), 0) FROM audit_events');
  // The anonymous-refusal audit throttle shared by every node (core/audit-throttle.ts).
  await knex.schema.createTable('audit_throttle', (t) => {
    t.text('source').primary();
    t.timestamp('window_start', { useTz: true }).notNullable();
    t.integer('count').notNullable();
    t.integer('suppressed').notNullable();
  });
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}

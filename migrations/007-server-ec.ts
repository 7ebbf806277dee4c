// Issue 13: the ECDSA P-256 server pair served beside the RSA one (pki/ca.ts servedPairs)
// is shared by every node like the RSA pair: node_secrets may now hold purpose 'server-ec'.

import type { Knex } from 'knex';

export const name = '007-server-ec';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE node_secrets DROP CONSTRAINT node_secrets_purpose_check');
  await knex.raw(`ALTER TABLE node_secrets ADD CONSTRAINT node_secrets_purpose_check CHECK (purpose IN ('ca','server','server-ec','token'))`);
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}

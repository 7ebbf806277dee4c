// Identity additions to 001 (issue 3). Forward-only, plain PostgreSQL (also PGlite).

import type { Knex } from 'knex';

export const name = '002-identity';

export async function up(knex: Knex): Promise<void> {
  // Tokens carry the generation they were issued under; a password change, reset, disable
  // or demotion bumps it, so every earlier token stops working on its next request.
  await knex.schema.alterTable('users', (t) => {
    t.integer('token_generation').notNullable().defaultTo(0);
  });
  // 'Alice' and 'alice' are one account, 'Radiology' and 'radiology' one department.
  await knex.raw('CREATE UNIQUE INDEX users_username_lower_uq ON users (lower(username))');
  await knex.raw('CREATE UNIQUE INDEX departments_name_lower_uq ON departments (lower(name))');
  // Listings of a department's accounts and cascades on department delete.
  await knex.raw('CREATE INDEX role_bindings_department_idx ON role_bindings (department_id)');
  await knex.raw('CREATE INDEX role_bindings_user_idx ON role_bindings (user_id) WHERE user_id IS NOT NULL');
  await knex.raw('CREATE INDEX role_bindings_device_idx ON role_bindings (device_id) WHERE device_id IS NOT NULL');
  // Pruning of quiet lockout rows.
  await knex.raw('CREATE INDEX lockouts_window_start_idx ON lockouts (window_start)');
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}

// IdentityRepo (core/identity/types.ts) on knex: departments, users, devices, role
// bindings, revoked certificates. Constraint violations become core errors here, so no
// SQL detail ever reaches a caller.

import type { Knex } from 'knex';
import { conflict, TresorError } from '../core/errors.js';
import type {
  AccountFilter,
  AccountKind,
  BindingRecord,
  DepartmentRecord,
  DeviceRecord,
  IdentityRepo,
  NewBinding,
  UserRecord,
} from '../core/identity/types.js';
import type { Role } from '../core/principal.js';
import { prepared, type Db } from './knex.js';
import { accountReadCache } from './account-cache.js';

// One advisory-lock key for "create the first user": two processes starting on an empty
// database at once must not both create an admin.
const BOOTSTRAP_LOCK = 0x7e50b007;

const iso = (v: unknown): string => new Date(v as string).toISOString();
const isoOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : iso(v));

const toDepartment = (r: any): DepartmentRecord => ({ id: Number(r.id), name: r.name, disabled: r.disabled, createdAt: iso(r.created_at) });

const toUser = (r: any): UserRecord => ({
  id: Number(r.id),
  username: r.username,
  passwordHash: r.password_hash,
  globalAdmin: r.global_admin,
  disabled: r.disabled,
  mustChangePassword: r.must_change_password,
  tokenGeneration: Number(r.token_generation),
  passwordChangedAt: iso(r.password_changed_at),
  createdAt: iso(r.created_at),
});

const toDevice = (r: any): DeviceRecord => ({
  id: Number(r.id),
  aeTitle: r.ae_title,
  certFingerprint: r.cert_fingerprint ?? null,
  certSerial: r.cert_serial ?? null,
  certNotAfter: isoOrNull(r.cert_not_after),
  passcodeHash: r.passcode_hash ?? null,
  host: r.host ?? null,
  port: r.port === null || r.port === undefined ? null : Number(r.port),
  disabled: r.disabled,
  createdAt: iso(r.created_at),
});

/** Rows a DELETE touched: pg returns a number, knex-pglite the driver's result object. */
export const affectedRows = (r: unknown): number =>
  typeof r === 'number' ? r : Number((r as { rowCount?: number; affectedRows?: number } | null)?.rowCount ?? (r as { affectedRows?: number } | null)?.affectedRows ?? 0);

/** A json column from a raw query: pg parses json, PGlite may hand back text. */
const json = (v: unknown): any => (typeof v === 'string' ? JSON.parse(v) : v);

/** The role bindings of one holder as a json array, ordered like bindingsOf (a SQL fragment; `col` and `idExpr` are ours, never input). */
const bindingsJson = (col: 'user_id' | 'device_id', idExpr: string) =>
  `(SELECT coalesce(json_agg(json_build_object('department_id', b.department_id, 'name', dep.name, 'disabled', dep.disabled, 'role', b.role)
                             ORDER BY dep.name, b.role), '[]'::json)
      FROM role_bindings b JOIN departments dep ON dep.id = b.department_id
     WHERE b.${col} = ${idExpr})`;

/** A role binding row (department_id, name, disabled, role), from knex or from bindingsJson. */
const toBinding = (b: any): BindingRecord => ({ departmentId: Number(b.department_id), departmentName: b.name, departmentDisabled: b.disabled, role: b.role as Role });

const bindingsFromJson = (v: unknown): BindingRecord[] => ((json(v) as any[] | null) ?? []).map(toBinding);

const holderColumn = (kind: AccountKind) => (kind === 'user' ? 'user_id' : 'device_id');

/** PostgreSQL SQLSTATE of a driver error (pg and PGlite both expose `code`). */
const sqlState = (e: unknown): string | undefined => (e && typeof e === 'object' ? (e as { code?: string }).code : undefined);

async function mapConstraint<T>(p: Promise<T>, onUnique: () => TresorError, onForeignKey?: () => TresorError): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (sqlState(e) === '23505') throw onUnique();
    if (onForeignKey && sqlState(e) === '23503') throw onForeignKey();
    throw e;
  }
}

function whereVisible(q: Knex.QueryBuilder, db: Db, kind: AccountKind, filter: AccountFilter): Knex.QueryBuilder {
  if (filter.all) return q;
  const col = holderColumn(kind);
  const ids = [...filter.departmentIds];
  if (ids.length === 0) return q.whereRaw('false');
  return q.whereIn('id', db('role_bindings').select(col).whereIn('department_id', ids).whereNotNull(col));
}

async function insertBindings(trx: Knex.Transaction, kind: AccountKind, id: number, roles: readonly NewBinding[]): Promise<void> {
  if (roles.length === 0) return;
  await trx('role_bindings').insert(roles.map((b) => ({ [holderColumn(kind)]: id, department_id: b.departmentId, role: b.role })));
}

export function createIdentityRepo(db: Db): IdentityRepo {
  const cachedRead = accountReadCache(db);
  return {
    // --- departments ---
    async listDepartments(filter) {
      const q = db('departments').select('*').orderBy('name');
      if (!filter.all) q.whereIn('id', [...filter.departmentIds]);
      return (await q).map(toDepartment);
    },
    async findDepartmentByName(name) {
      const r = await db('departments').whereRaw('lower(name) = lower(?)', [name]).first();
      return r ? toDepartment(r) : null;
    },
    async createDepartment(name) {
      const [r] = await mapConstraint(db('departments').insert({ name }).returning('*'), () =>
        conflict('department-exists', 'a department with this name exists'),
      );
      return toDepartment(r);
    },
    async setDepartmentDisabled(id, disabled) {
      await db('departments').where({ id }).update({ disabled });
    },
    async deleteDepartment(id) {
      await mapConstraint(
        db('departments').where({ id }).delete(),
        () => conflict('department-not-empty', 'the department still holds studies'),
        () => conflict('department-not-empty', 'the department still holds studies'),
      );
    },

    // --- users ---
    async countUsers() {
      const r = await db('users').count<{ n: string | number }[]>({ n: '*' });
      return Number(r[0].n);
    },
    async findUserByName(username) {
      const r = await db('users').whereRaw('lower(username) = lower(?)', [username]).first();
      return r ? toUser(r) : null;
    },
    async findUserById(id) {
      const r = await db('users').where({ id }).first();
      return r ? toUser(r) : null;
    },
    async createUser(u) {
      return db.transaction(async (trx) => {
        const [r] = await mapConstraint(
          trx('users')
            .insert({ username: u.username, password_hash: u.passwordHash, global_admin: u.globalAdmin, must_change_password: u.mustChangePassword })
            .returning('*'),
          () => conflict('user-exists', 'a user with this name exists'),
        );
        await insertBindings(trx, 'user', Number(r.id), u.roles);
        return toUser(r);
      });
    },
    async createFirstUser(u) {
      return db.transaction(async (trx) => {
        await trx.raw('SELECT pg_advisory_xact_lock(?)', [BOOTSTRAP_LOCK]);
        const n = await trx('users').count<{ n: string | number }[]>({ n: '*' });
        if (Number(n[0].n) > 0) return null;
        const [r] = await trx('users')
          .insert({ username: u.username, password_hash: u.passwordHash, global_admin: true, must_change_password: u.mustChangePassword })
          .returning('*');
        return toUser(r);
      });
    },
    async listUsers(filter) {
      return (await whereVisible(db('users').select('*').orderBy('username'), db, 'user', filter)).map(toUser);
    },
    async updateUser(id, patch) {
      const set: Record<string, unknown> = {};
      if (patch.passwordHash !== undefined) {
        set.password_hash = patch.passwordHash;
        set.password_changed_at = db.fn.now();
      }
      if (patch.mustChangePassword !== undefined) set.must_change_password = patch.mustChangePassword;
      if (patch.disabled !== undefined) set.disabled = patch.disabled;
      if (patch.globalAdmin !== undefined) set.global_admin = patch.globalAdmin;
      if (patch.bumpGeneration) set.token_generation = db.raw('token_generation + 1');
      if (Object.keys(set).length === 0) return;
      await db('users').where({ id }).update(set);
    },
    async deleteUser(id) {
      await db('users').where({ id }).delete();
    },
    async countEnabledGlobalAdmins() {
      const r = await db('users').where({ global_admin: true, disabled: false }).count<{ n: string | number }[]>({ n: '*' });
      return Number(r[0].n);
    },

    // --- devices ---
    async findDeviceByAeTitle(aeTitle) {
      const r = await db('devices').where({ ae_title: aeTitle }).first();
      return r ? toDevice(r) : null;
    },
    async findDeviceById(id) {
      const r = await db('devices').where({ id }).first();
      return r ? toDevice(r) : null;
    },
    async certificateLogin(fingerprint) {
      // One statement instead of three sequential reads (issue 13: each round trip is
      // ~1-2 ms of the association's set-up). Read fresh on every association, so a
      // revocation or deletion committed by any node refuses the next one; on the embedded
      // database "fresh" is the cache until an account table changes (account-cache.ts).
      // Named (knex.ts prepared()): parsed once per connection, not on every association.
      return cachedRead(`certificate:${fingerprint}`, async () => {
        const res = await prepared(
          db.raw(
            `SELECT EXISTS (SELECT 1 FROM revoked_certificates WHERE fingerprint = :fp) AS revoked,
                    to_json(d) AS device,
                    ${bindingsJson('device_id', 'd.id')} AS bindings
               FROM (SELECT 1) AS one LEFT JOIN devices d ON d.cert_fingerprint = :fp`,
            { fp: fingerprint },
          ),
          'tresor_certificate_login',
        );
        const r = (res as { rows: any[] }).rows[0];
        const device = json(r?.device);
        return { revoked: r?.revoked === true, device: device ? toDevice(device) : null, bindings: bindingsFromJson(r?.bindings) };
      });
    },
    async accountRead(kind, id, certDeviceId) {
      // One statement (one snapshot, one round trip) on every authenticated request; cached
      // only on the embedded database, until an account table changes (account-cache.ts).
      const table = kind === 'user' ? 'users' : 'devices';
      return cachedRead(`account:${table}:${id}:${certDeviceId ?? ''}`, async () => {
        const res = await prepared(
          db.raw(
            `SELECT to_json(a) AS account, ${bindingsJson(holderColumn(kind), 'a.id')} AS bindings,
                    (SELECT to_json(cd) FROM devices cd WHERE cd.id = :certDeviceId) AS cert_device
               FROM (SELECT 1) AS one LEFT JOIN ${table} a ON a.id = :id`,
            { id, certDeviceId: certDeviceId ?? null },
          ),
          `tresor_account_${table}`,
        );
        const r = (res as { rows: any[] }).rows[0];
        const account = json(r?.account);
        const certDevice = json(r?.cert_device);
        return {
          account: account ? (kind === 'user' ? toUser(account) : toDevice(account)) : null,
          bindings: bindingsFromJson(r?.bindings),
          certDevice: certDevice ? toDevice(certDevice) : null,
        };
      });
    },
    async createDevice(d) {
      return db.transaction(async (trx) => {
        const [r] = await mapConstraint(trx('devices').insert({ ae_title: d.aeTitle, host: d.host, port: d.port }).returning('*'), () =>
          conflict('device-exists', 'a device with this AE title exists'),
        );
        await insertBindings(trx, 'device', Number(r.id), d.roles);
        return toDevice(r);
      });
    },
    async listDevices(filter) {
      return (await whereVisible(db('devices').select('*').orderBy('ae_title'), db, 'device', filter)).map(toDevice);
    },
    async updateDevice(id, patch) {
      const set: Record<string, unknown> = {};
      if (patch.disabled !== undefined) set.disabled = patch.disabled;
      if (patch.passcodeHash !== undefined) set.passcode_hash = patch.passcodeHash;
      if (patch.host !== undefined) set.host = patch.host;
      if (patch.port !== undefined) set.port = patch.port;
      if (Object.keys(set).length === 0) return;
      await db('devices').where({ id }).update(set);
    },
    async replaceDeviceCertificate(id, cert) {
      return db.transaction(async (trx) => {
        const row = await trx('devices').where({ id }).forUpdate().first();
        const old: string | null = row?.cert_fingerprint ?? null;
        if (old) await trx('revoked_certificates').insert({ fingerprint: old, device_id: id }).onConflict('fingerprint').ignore();
        await mapConstraint(
          trx('devices')
            .where({ id })
            .update({ cert_fingerprint: cert?.fingerprint ?? null, cert_serial: cert?.serial ?? null, cert_not_after: cert?.notAfter ?? null }),
          () => conflict('certificate-in-use', 'this certificate is bound to another device'),
        );
        return old;
      });
    },
    async deleteDevice(id) {
      await db.transaction(async (trx) => {
        const row = await trx('devices').where({ id }).forUpdate().first();
        // The fingerprint stays refused after the device is gone, even if the CA signed it.
        if (row?.cert_fingerprint) {
          await trx('revoked_certificates').insert({ fingerprint: row.cert_fingerprint, device_id: id }).onConflict('fingerprint').ignore();
        }
        await trx('devices').where({ id }).delete();
      });
    },

    // --- role bindings ---
    async bindingsOf(kind, id) {
      const rows = await db('role_bindings as b')
        .join('departments as d', 'd.id', 'b.department_id')
        .where(`b.${holderColumn(kind)}`, id)
        .select('b.department_id', 'd.name', 'd.disabled', 'b.role')
        .orderBy(['d.name', 'b.role']);
      return rows.map(toBinding);
    },
    async addBinding(kind, id, b) {
      const col = holderColumn(kind);
      const existing = await db('role_bindings').where({ [col]: id, department_id: b.departmentId, role: b.role }).first();
      if (existing) return false;
      await mapConstraint(db('role_bindings').insert({ [col]: id, department_id: b.departmentId, role: b.role }), () =>
        conflict('role-exists', 'the role is already held'),
      ).catch((e) => {
        if (e instanceof TresorError && e.reason === 'role-exists') return; // a concurrent grant of the same role
        throw e;
      });
      return true;
    },
    async removeBinding(kind, id, b) {
      const n = await db('role_bindings').where({ [holderColumn(kind)]: id, department_id: b.departmentId, role: b.role }).delete();
      return affectedRows(n) > 0;
    },
  };
}

// The embedded database's account reads are cached until an account changes (issue 13;
// src/db/account-cache.ts, migration 008). What must hold: with no change, a repeated
// read runs no statement; after any committed change to a table the reads look at —
// users, devices, role_bindings, departments, revoked_certificates — by the repository or
// by hand-written SQL, the very next read sees it; a rolled-back change is never seen;
// and on PostgreSQL nothing is cached (other nodes change accounts too).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityRepo } from '../../src/db/identity.repo.js';
import { prepared, type Db } from '../../src/db/knex.js';
import type { DepartmentRecord, DeviceRecord, IdentityRepo, UserRecord } from '../../src/core/identity/types.js';
import { databasesUnderTest } from '../helpers/db.js';

const FP = 'ab'.repeat(32);

describe.each(databasesUnderTest())('account reads ($name)', (dbu) => {
  const cached = dbu.name === 'pglite';
  let t: { db: Db; close(): Promise<void> };
  let repo: IdentityRepo;
  let dep: DepartmentRecord;
  let device: DeviceRecord;
  let user: UserRecord;
  let statements = 0;

  /** How many statements `fn` sent to the database. */
  async function counted<T>(fn: () => Promise<T>): Promise<{ value: T; statements: number }> {
    const before = statements;
    const value = await fn();
    return { value, statements: statements - before };
  }
  const readDevice = () => repo.accountRead('device', device.id);
  const readUser = () => repo.accountRead('user', user.id);
  const login = () => repo.certificateLogin(FP);

  beforeAll(async () => {
    t = await dbu.open();
    repo = createIdentityRepo(t.db);
    t.db.on('query', () => void statements++);
    dep = await repo.createDepartment('Radiology');
    device = await repo.createDevice({ aeTitle: 'CT1', host: null, port: null, roles: [{ departmentId: dep.id, role: 'writer' }] });
    await repo.replaceDeviceCertificate(device.id, { fingerprint: FP, serial: '01', notAfter: null });
    user = await repo.createUser({ username: 'reader1', passwordHash: 'x', globalAdmin: false, mustChangePassword: false, roles: [{ departmentId: dep.id, role: 'reader' }] });
  });
  afterAll(async () => {
    await t?.close();
  });

  it(cached ? 'a repeated read with no change in between runs no statement' : 'every read runs its statement', async () => {
    await readDevice();
    await login();
    const again = await counted(readDevice);
    const loginAgain = await counted(login);
    expect(again.statements).toBe(cached ? 0 : 1);
    expect(loginAgain.statements).toBe(cached ? 0 : 1);
    expect(again.value.account).toMatchObject({ id: device.id, disabled: false });
    expect(again.value.bindings).toEqual([expect.objectContaining({ departmentId: dep.id, role: 'writer' })]);
    expect(loginAgain.value.device?.id).toBe(device.id);
  });

  it('what a caller does to an answer does not change the next one', async () => {
    const a = await readDevice();
    a.bindings.length = 0;
    (a.account as DeviceRecord).disabled = true;
    const b = await readDevice();
    expect(b.bindings).toHaveLength(1);
    expect(b.account?.disabled).toBe(false);
  });

  // Each change, then the very next read: the revocations the re-check before every DIMSE
  // request and the token check behind every HTTP request exist to catch.
  it('a disabled device is seen at the next read, by the re-check and by the certificate login', async () => {
    await readDevice();
    await login();
    await repo.updateDevice(device.id, { disabled: true });
    expect((await readDevice()).account?.disabled).toBe(true);
    expect((await login()).device?.disabled).toBe(true);
    await repo.updateDevice(device.id, { disabled: false });
    expect((await readDevice()).account?.disabled).toBe(false);
  });

  it('a removed and an added role binding are seen at the next read', async () => {
    await readDevice();
    await repo.removeBinding('device', device.id, { departmentId: dep.id, role: 'writer' });
    expect((await readDevice()).bindings).toEqual([]);
    expect((await login()).bindings).toEqual([]);
    await repo.addBinding('device', device.id, { departmentId: dep.id, role: 'writer' });
    expect((await readDevice()).bindings).toHaveLength(1);
  });

  it('a disabled department is seen at the next read', async () => {
    await readUser();
    await repo.setDepartmentDisabled(dep.id, true);
    expect((await readUser()).bindings[0]).toMatchObject({ departmentId: dep.id, departmentDisabled: true });
    await repo.setDepartmentDisabled(dep.id, false);
    expect((await readUser()).bindings[0]).toMatchObject({ departmentDisabled: false });
  });

  it("a user's password change (token generation) is seen at the next read", async () => {
    const before = (await readUser()).account as UserRecord;
    await repo.updateUser(user.id, { bumpGeneration: true });
    const after = (await readUser()).account as UserRecord;
    expect(after.tokenGeneration).toBe(before.tokenGeneration + 1);
  });

  it('a revoked certificate is seen at the next certificate login', async () => {
    expect((await login()).revoked).toBe(false);
    await t.db('revoked_certificates').insert({ fingerprint: FP, device_id: device.id });
    expect((await login()).revoked).toBe(true);
    await t.db('revoked_certificates').where({ fingerprint: FP }).delete();
    expect((await login()).revoked).toBe(false);
  });

  it('a change by hand-written SQL, and one through a named statement, are seen at the next read', async () => {
    await readDevice();
    await t.db.raw('UPDATE devices SET disabled = true WHERE id = ?', [device.id]);
    expect((await readDevice()).account?.disabled).toBe(true);
    await prepared(t.db.raw('UPDATE devices SET disabled = false WHERE id = ?', [device.id]), 'test_account_cache_named_update');
    expect((await readDevice()).account?.disabled).toBe(false);
  });

  it('a change inside a transaction is seen once it commits, and a rolled-back one never', async () => {
    await readDevice();
    await t.db.transaction(async (trx) => {
      await trx('devices').where({ id: device.id }).update({ disabled: true });
    });
    expect((await readDevice()).account?.disabled).toBe(true);
    await t.db
      .transaction(async (trx) => {
        await trx('devices').where({ id: device.id }).update({ disabled: false });
        throw new Error('roll back');
      })
      .catch(() => undefined);
    expect((await readDevice()).account?.disabled).toBe(true);
    await repo.updateDevice(device.id, { disabled: false });
    expect((await readDevice()).account?.disabled).toBe(false);
  });

  it('a read on its way while a change commits does not keep the older answer', async () => {
    await readDevice();
    await repo.updateDevice(device.id, { host: 'a' }); // the next read goes to the database
    const [racing] = await Promise.all([readDevice(), repo.updateDevice(device.id, { disabled: true })]);
    expect(racing.account?.id).toBe(device.id);
    expect((await readDevice()).account?.disabled).toBe(true);
    await repo.updateDevice(device.id, { disabled: false });
  });

  it('a deleted user is gone at the next read', async () => {
    const u = await repo.createUser({ username: 'temp1', passwordHash: 'x', globalAdmin: false, mustChangePassword: false, roles: [] });
    expect((await repo.accountRead('user', u.id)).account).not.toBeNull();
    await repo.deleteUser(u.id);
    expect((await repo.accountRead('user', u.id)).account).toBeNull();
  });
});

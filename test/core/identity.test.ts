// core/identity on a real database (PGlite, and PostgreSQL when TEST_DATABASE_URL is
// set): what the DIMSE door and main.ts call — bootstrap, device certificates and
// passcodes, user passwords, tokens, C-MOVE destinations, principals re-read on every
// call — and the lockout with its growing interval.

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditLog, type AuditLog } from '../../src/core/audit.js';
import { isTresorError } from '../../src/core/errors.js';
import { createIdentity, INITIAL_ADMIN_PASSWORD_FILE, type Identity } from '../../src/core/identity/index.js';
import { afterFailure, DEFAULT_LOCKOUT_POLICY } from '../../src/core/identity/lockout.js';
import { openTokenService } from '../../src/core/identity/tokens.js';
import { pkiCertificateIssuer } from '../../src/pki/certificate-issuer.js';
import { fsTokenKeyStore } from '../../src/pki/token-key-store.js';
import { systemPrincipal, type Principal } from '../../src/core/principal.js';
import { createAuditRepo } from '../../src/db/audit.repo.js';
import { createIdentityRepo } from '../../src/db/identity.repo.js';
import type { Db } from '../../src/db/knex.js';
import { createLockoutRepo } from '../../src/db/lockout.repo.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { tempDir, testPki } from '../helpers/http.js';

const SETTINGS = { issuer: 'https://tresor.test', audience: 'tresor-api', ttlSeconds: 300 };

async function makeIdentity(db: Db, dataDir: string, pki?: Pki, now?: () => Date): Promise<{ identity: Identity; audit: AuditLog }> {
  const audit = createAuditLog(createAuditRepo(db));
  const tokens = await openTokenService({ keys: fsTokenKeyStore(path.join(dataDir, 'keys')), settings: SETTINGS });
  const identity = createIdentity({ repo: createIdentityRepo(db), lockouts: createLockoutRepo(db), audit, tokens, certificates: pki && pkiCertificateIssuer(pki), dataDir, now });
  return { identity, audit };
}

const reasonOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isTresorError(e) ? `${e.kind}:${e.reason}` : `other:${String(e)}`;
  }
};

describe('lockout growth (pure)', () => {
  const policy = DEFAULT_LOCKOUT_POLICY;
  it('locks after the threshold, doubles each time, caps at a day, forgets after a quiet day', () => {
    let t = Date.parse('2030-01-01T00:00:00Z');
    let s = null as ReturnType<typeof afterFailure> | null;
    const fail = () => (s = afterFailure(s, 5, policy, new Date(t)));
    for (let i = 0; i < 4; i++) fail();
    expect(s!.lockedUntil).toBeNull();
    fail();
    expect(s!.lockedUntil!.getTime() - t).toBe(5 * 60_000);
    // Failures while locked do not count and do not extend the lock.
    const until = s!.lockedUntil;
    fail();
    expect(s!.lockedUntil).toEqual(until);
    expect(s!.failures).toBe(0);
    const durations: number[] = [];
    for (let lock = 2; lock <= 12; lock++) {
      t = s!.lockedUntil!.getTime() + 1000;
      for (let i = 0; i < 5; i++) fail();
      durations.push(s!.lockedUntil!.getTime() - t);
    }
    expect(durations.slice(0, 4)).toEqual([10, 20, 40, 80].map((m) => m * 60_000));
    expect(Math.max(...durations)).toBe(24 * 60 * 60_000);
    // A quiet day later the count starts over.
    t = s!.lockedUntil!.getTime() + policy.forgetAfterMs + 1000;
    fail();
    expect(s!.lockCount).toBe(0);
    expect(s!.failures).toBe(1);
  });

  it('restarts the window after 15 minutes', () => {
    const t0 = Date.parse('2030-01-01T00:00:00Z');
    let s = afterFailure(null, 5, policy, new Date(t0));
    for (let i = 0; i < 3; i++) s = afterFailure(s, 5, policy, new Date(t0 + i * 1000));
    expect(s.failures).toBe(4);
    s = afterFailure(s, 5, policy, new Date(t0 + 16 * 60_000));
    expect(s.failures).toBe(1);
    expect(s.lockedUntil).toBeNull();
  });
});

describe.each(databasesUnderTest())('identity on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let dataDir: string;
  let pki: Pki;
  let identity: Identity;
  let audit: AuditLog;
  let admin: Principal;
  let clock = new Date();
  const now = () => clock;

  beforeAll(async () => {
    t = await dbu.open();
    dataDir = await tempDir('tresor-identity-');
    pki = await testPki();
    ({ identity, audit } = await makeIdentity(t.db, dataDir, pki, now));
  });
  afterAll(async () => {
    await t?.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  describe('bootstrap', () => {
    it('creates admin with a generated password in a 0600 file, to be changed first', async () => {
      const r = await identity.bootstrapAdmin({});
      expect(r).toMatchObject({ created: true, username: 'admin', mustChangePassword: true });
      const file = path.join(dataDir, INITIAL_ADMIN_PASSWORD_FILE);
      expect(r.created && r.passwordFile).toBe(file);
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      const password = (await fs.readFile(file, 'utf8')).trim();
      expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
      const token = await identity.login({ username: 'admin', password, source: '10.9.9.9' });
      expect(token.mustChangePassword).toBe(true);
      // A token that must change its password is no good for DIMSE either.
      expect(await identity.authenticateAccessToken(token.accessToken)).toBeNull();
      expect(await identity.authenticatePassword({ username: 'admin', password, source: '10.9.9.9' })).toBeNull();
      // Changing it ends the old token, clears the flag and removes the file.
      const session = await identity.sessionForClaims(await identity.tokens.verify(token.accessToken), '10.9.9.9');
      const next = await identity.changePassword(session!.principal, { currentPassword: password, newPassword: 'the operator chose this one' });
      expect(next.mustChangePassword).toBe(false);
      expect(await identity.authenticateAccessToken(token.accessToken)).toBeNull();
      const p = await identity.authenticateAccessToken(next.accessToken, '10.9.9.9');
      expect(p).toMatchObject({ kind: 'user', name: 'admin', globalAdmin: true, source: '10.9.9.9' });
      admin = p!;
      await expect(fs.stat(file)).rejects.toThrow();
    });

    it('does nothing once a user exists (no second default account)', async () => {
      expect(await identity.bootstrapAdmin({})).toEqual({ created: false });
      expect(await identity.bootstrapAdmin({ adminPassword: 'another long password' })).toEqual({ created: false });
    });

    it('takes TRESOR_ADMIN_PASSWORD without a change; refuses a weak one; two racing starts create one admin', async () => {
      const other = await dbu.open();
      const d = await tempDir('tresor-boot-');
      try {
        const { identity: id2 } = await makeIdentity(other.db, d);
        expect(await reasonOf(id2.bootstrapAdmin({ adminPassword: 'admin-password-1' }))).toBe('invalid:weak-password');
        const results = await Promise.all([id2.bootstrapAdmin({ adminPassword: 'operator secret 42' }), id2.bootstrapAdmin({ adminPassword: 'operator secret 43' })]);
        expect(results.filter((r) => r.created)).toHaveLength(1);
        const winner = results.find((r) => r.created);
        expect(winner).toMatchObject({ mustChangePassword: false, passwordFile: undefined });
        expect(await fs.readdir(d)).not.toContain(INITIAL_ADMIN_PASSWORD_FILE);
        const n = await other.db('users').count<{ n: number }[]>({ n: '*' });
        expect(Number(n[0].n)).toBe(1);
      } finally {
        await other.close();
        await fs.rm(d, { recursive: true, force: true });
      }
    });
  });

  describe('devices', () => {
    let cardiology: number;
    beforeAll(async () => {
      await identity.admin.createDepartment(admin, { name: 'cardiology' });
      await identity.admin.createDepartment(admin, { name: 'radiology' });
      cardiology = Number((await t.db('departments').where({ name: 'cardiology' }).first()).id);
      await identity.admin.createDevice(admin, { aeTitle: 'CT1', roles: [{ department: 'cardiology', role: 'writer' }] });
      await identity.admin.createDevice(admin, { aeTitle: 'PACS2', roles: [{ department: 'radiology', role: 'reader' }], host: '10.0.0.5', port: 11112 });
    });

    it('authenticates the bound certificate with its AE title, and nothing else', async () => {
      const issued = await identity.admin.issueDeviceCertificate(admin, 'CT1', {});
      expect(issued.privateKey).toContain('PRIVATE KEY');
      expect(issued.ca).toBe(pki.caCertPem);
      const p = await identity.authenticateDeviceCertificate({ fingerprint256: issued.fingerprint256, callingAe: 'CT1', source: '10.1.1.1' });
      expect(p).toMatchObject({ kind: 'device', name: 'CT1', globalAdmin: false, roles: [{ departmentId: cardiology, role: 'writer' }] });
      // The colon-separated upper-case form (openssl x509 -fingerprint) works too.
      const colon = issued.fingerprint256.toUpperCase().match(/../g)!.join(':');
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: colon, callingAe: 'CT1 ' })).not.toBeNull();
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: issued.fingerprint256, callingAe: 'PACS2' })).toBeNull();
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: '00'.repeat(32), callingAe: 'CT1' })).toBeNull();
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: 'zz', callingAe: 'CT1' })).toBeNull();
    });

    it('re-issuing revokes the previous certificate; revoking leaves none; deleting keeps it revoked', async () => {
      const first = (await identity.admin.getDevice(admin, 'CT1')).certificate!.fingerprint256;
      const second = await identity.admin.issueDeviceCertificate(admin, 'CT1', { days: 30 });
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: first, callingAe: 'CT1' })).toBeNull();
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: second.fingerprint256, callingAe: 'CT1' })).not.toBeNull();
      await identity.admin.revokeDeviceCertificate(admin, 'CT1');
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: second.fingerprint256, callingAe: 'CT1' })).toBeNull();
      expect(await reasonOf(identity.admin.revokeDeviceCertificate(admin, 'CT1'))).toBe('not-found:no-certificate');
      const third = await identity.admin.issueDeviceCertificate(admin, 'CT1', {});
      await identity.admin.createDevice(admin, { aeTitle: 'TEMP', roles: [{ department: 'cardiology', role: 'writer' }] });
      const temp = await identity.admin.issueDeviceCertificate(admin, 'TEMP', {});
      await identity.admin.deleteDevice(admin, 'TEMP');
      expect(await t.db('revoked_certificates').where({ fingerprint: temp.fingerprint256 }).first()).toBeDefined();
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: third.fingerprint256, callingAe: 'CT1' })).not.toBeNull();
      const rows = await audit.list({ action: 'login', limit: 50 });
      expect(rows.some((r) => r.outcome === 'failure' && r.details.reason === 'certificate-revoked')).toBe(true);
      expect(rows.some((r) => r.outcome === 'failure' && r.details.reason === 'ae-title-mismatch')).toBe(true);
    });

    it('a disabled device is refused at once, and accepted again when enabled', async () => {
      const fp = (await identity.admin.getDevice(admin, 'CT1')).certificate!.fingerprint256;
      await identity.admin.updateDevice(admin, 'CT1', { disabled: true });
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: fp, callingAe: 'CT1' })).toBeNull();
      await identity.admin.updateDevice(admin, 'CT1', { disabled: false });
      expect(await identity.authenticateDeviceCertificate({ fingerprint256: fp, callingAe: 'CT1' })).not.toBeNull();
    });

    it('a certificate login reads revocation, device and roles fresh: another node\'s change refuses the very next association', async () => {
      // Node B: its own identity service (its own audit log, token keys) on the same
      // database, as a second server sharing PostgreSQL. Node A (`identity`) changes things.
      const nodeBDir = await tempDir('tresor-identity-b-');
      try {
        const { identity: nodeB } = await makeIdentity(t.db, nodeBDir, pki, now);
        await identity.admin.createDevice(admin, { aeTitle: 'MR9', roles: [{ department: 'radiology', role: 'reader' }] });
        const fp = (await identity.admin.issueDeviceCertificate(admin, 'MR9', {})).fingerprint256;
        const login = () => nodeB.authenticateDeviceCertificate({ fingerprint256: fp, callingAe: 'MR9' });
        const radiology = Number((await t.db('departments').where({ name: 'radiology' }).first()).id);
        const roles = async () => (await login())!.roles.map((r) => `${r.departmentId}:${r.role}`);
        expect(await login()).toMatchObject({ name: 'MR9', roles: [{ departmentId: radiology, role: 'reader' }] });
        // Roles: granted and revoked on A, seen by B's next login (ordered by department, role).
        await identity.admin.grantDeviceRole(admin, 'MR9', { department: 'cardiology', role: 'writer' });
        expect(await roles()).toEqual([`${cardiology}:writer`, `${radiology}:reader`]);
        await identity.admin.revokeDeviceRole(admin, 'MR9', { department: 'cardiology', role: 'writer' });
        expect(await roles()).toEqual([`${radiology}:reader`]);
        // Revoked on A: refused on B at once (a cache here would let it in).
        await identity.admin.revokeDeviceCertificate(admin, 'MR9');
        expect(await login()).toBeNull();
        // Re-issued, then the device deleted on A: the new certificate is refused on B at once too.
        const fp2 = (await identity.admin.issueDeviceCertificate(admin, 'MR9', {})).fingerprint256;
        expect(await nodeB.authenticateDeviceCertificate({ fingerprint256: fp2, callingAe: 'MR9' })).not.toBeNull();
        await identity.admin.deleteDevice(admin, 'MR9');
        expect(await nodeB.authenticateDeviceCertificate({ fingerprint256: fp2, callingAe: 'MR9' })).toBeNull();
        const reasons = (await audit.list({ action: 'login', limit: 20 })).map((r) => r.details.reason);
        expect(reasons.filter((r) => r === 'certificate-revoked').length).toBeGreaterThanOrEqual(2);
      } finally {
        await fs.rm(nodeBDir, { recursive: true, force: true });
      }
    });

    it('the re-check of an open association reads account, roles and the held certificate fresh, in one statement', async () => {
      await identity.admin.createDevice(admin, { aeTitle: 'US7', roles: [{ department: 'radiology', role: 'reader' }] });
      const fp = (await identity.admin.issueDeviceCertificate(admin, 'US7', {})).fingerprint256;
      const device = (await identity.authenticateDeviceCertificate({ fingerprint256: fp, callingAe: 'US7' }))!;
      await identity.admin.createUser(admin, { username: 'sono', password: 'a long ultrasound phrase', roles: [{ department: 'radiology', role: 'reader' }] });
      const user = (await identity.authenticatePassword({ username: 'sono', password: 'a long ultrasound phrase' }))!;
      const asDevice = { principal: device, certificate: { fingerprint256: fp, deviceId: device.id } };
      // A user who authenticated next to US7's certificate: the third read (the certificate's device).
      const asUser = { principal: user, certificate: { fingerprint256: fp, deviceId: device.id } };
      expect(await identity.recheckPrincipal(asDevice)).toMatchObject({ ok: true, principal: { name: 'US7', roles: [{ role: 'reader' }] } });
      const first = await identity.recheckPrincipal(asUser);
      expect(first).toMatchObject({ ok: true, principal: { name: 'sono' } });
      const held = { ...asUser, generation: first.ok ? first.generation : -1 };
      await identity.admin.grantUserRole(admin, 'sono', { department: 'cardiology', role: 'reader' });
      expect(await identity.recheckPrincipal(held)).toMatchObject({ ok: true, principal: { roles: [{ departmentId: cardiology }, {}] } });
      await identity.admin.revokeUserRole(admin, 'sono', { department: 'radiology', role: 'reader' });
      expect(await identity.recheckPrincipal(held)).toEqual({ ok: false, reason: 'role-revoked' });
      await identity.admin.updateUser(admin, 'sono', { password: 'another long ultrasound phrase' });
      expect(await identity.recheckPrincipal({ ...held, principal: { ...user, roles: [] } })).toEqual({ ok: false, reason: 'credentials-changed' });
      await identity.admin.issueDeviceCertificate(admin, 'US7', {});
      expect(await identity.recheckPrincipal(asDevice)).toEqual({ ok: false, reason: 'certificate-replaced' });
      expect(await identity.recheckPrincipal({ principal: { ...user, roles: [] }, certificate: asUser.certificate })).toEqual({ ok: false, reason: 'certificate-replaced' });
      await identity.admin.deleteDevice(admin, 'US7');
      expect(await identity.recheckPrincipal(asDevice)).toEqual({ ok: false, reason: 'account-gone' });
      expect(await identity.recheckPrincipal({ principal: { ...user, roles: [] }, certificate: asUser.certificate })).toEqual({ ok: false, reason: 'account-gone' });
      await identity.admin.deleteUser(admin, 'sono');
      expect(await identity.recheckPrincipal({ principal: user })).toEqual({ ok: false, reason: 'account-gone' });
    });

    it('passcodes: hashed, checked, cleared', async () => {
      expect(await reasonOf(identity.admin.setDevicePasscode(admin, 'CT1', 'short'))).toBe('invalid:weak-password');
      await identity.admin.setDevicePasscode(admin, 'CT1', 'a passcode for one scanner');
      const row = await t.db('devices').where({ ae_title: 'CT1' }).first();
      expect(row.passcode_hash).toMatch(/^\$scrypt\$/);
      expect(await identity.authenticateDevicePasscode({ aeTitle: 'CT1', passcode: 'a passcode for one scanner', source: '10.2.2.2' })).toMatchObject({ name: 'CT1' });
      expect(await identity.authenticateDevicePasscode({ aeTitle: 'CT1', passcode: 'wrong', source: '10.2.2.2' })).toBeNull();
      expect(await identity.authenticateDevicePasscode({ aeTitle: 'PACS2', passcode: 'a passcode for one scanner', source: '10.2.2.2' })).toBeNull();
      await identity.admin.clearDevicePasscode(admin, 'CT1');
      expect(await identity.authenticateDevicePasscode({ aeTitle: 'CT1', passcode: 'a passcode for one scanner', source: '10.2.2.2' })).toBeNull();
    });

    it('C-MOVE destinations are only configured, enabled devices with host and port', async () => {
      expect(await identity.moveDestination('PACS2')).toMatchObject({ host: '10.0.0.5', port: 11112, principal: { kind: 'device', name: 'PACS2' } });
      expect(await identity.moveDestination('CT1')).toBeNull();
      expect(await identity.moveDestination('NOBODY')).toBeNull();
      expect(await identity.moveDestination('bad\\ae')).toBeNull();
      await identity.admin.updateDevice(admin, 'PACS2', { disabled: true });
      expect(await identity.moveDestination('PACS2')).toBeNull();
      await identity.admin.updateDevice(admin, 'PACS2', { disabled: false });
      expect(await reasonOf(identity.admin.updateDevice(admin, 'PACS2', { host: 'not a host!' }))).toBe('invalid:bad-destination');
    });

    it('AE titles follow PS3.5: 1-16 characters, no backslash or control characters, not all spaces', async () => {
      for (const bad of ['', '    ', 'A\\B', 'TOO-LONG-AE-TITLE', 'CT\u0007', 'CT\n1']) {
        expect(await reasonOf(identity.admin.createDevice(admin, { aeTitle: bad, roles: [] }))).toBe('invalid:bad-ae-title');
      }
      expect(await reasonOf(identity.admin.createDevice(admin, { aeTitle: 'CT1', roles: [] }))).toBe('conflict:device-exists');
      expect(await reasonOf(identity.admin.createDevice(admin, { aeTitle: 'X', roles: [{ department: 'cardiology', role: 'admin' }] }))).toBe('invalid:bad-role');
    });
  });

  describe('users, roles and principals re-read on every call', () => {
    it('roles and disabled state take effect at the next call; roles in a disabled department give nothing', async () => {
      await identity.admin.createUser(admin, { username: 'Bob', password: 'her long secret phrase', roles: [{ department: 'cardiology', role: 'reader' }] });
      const bob = await identity.authenticatePassword({ username: 'bob', password: 'her long secret phrase', source: '10.3.3.3' });
      expect(bob).toMatchObject({ kind: 'user', name: 'bob', globalAdmin: false });
      expect(bob!.roles).toHaveLength(1);
      await identity.admin.grantUserRole(admin, 'bob', { department: 'radiology', role: 'writer' });
      expect((await identity.principalFor('user', bob!.id))!.roles).toHaveLength(2);
      await identity.admin.updateDepartment(admin, 'radiology', { disabled: true });
      expect((await identity.principalFor('user', bob!.id))!.roles).toHaveLength(1);
      await identity.admin.updateDepartment(admin, 'radiology', { disabled: false });
      await identity.admin.revokeUserRole(admin, 'bob', { department: 'cardiology', role: 'reader' });
      expect((await identity.principalFor('user', bob!.id))!.roles.map((r) => r.role)).toEqual(['writer']);
      await identity.admin.updateUser(admin, 'bob', { disabled: true });
      expect(await identity.principalFor('user', bob!.id)).toBeNull();
      expect(await identity.authenticatePassword({ username: 'bob', password: 'her long secret phrase', source: '10.3.3.3' })).toBeNull();
      await identity.admin.updateUser(admin, 'bob', { disabled: false });
      expect(await identity.principalFor('user', bob!.id)).not.toBeNull();
      expect(await identity.principalFor('device', 999_999)).toBeNull();
    });

    it('a token ends when its user is disabled, even after re-enabling, and when an admin resets the password', async () => {
      const tok = await identity.login({ username: 'bob', password: 'her long secret phrase', source: '10.3.3.3' });
      expect(await identity.authenticateAccessToken(tok.accessToken)).not.toBeNull();
      await identity.admin.updateUser(admin, 'bob', { disabled: true });
      await identity.admin.updateUser(admin, 'bob', { disabled: false });
      expect(await identity.authenticateAccessToken(tok.accessToken)).toBeNull();
      const tok2 = await identity.login({ username: 'bob', password: 'her long secret phrase', source: '10.3.3.3' });
      await identity.admin.updateUser(admin, 'bob', { password: 'a temporary one-time pw' });
      expect(await identity.authenticateAccessToken(tok2.accessToken)).toBeNull();
      const tok3 = await identity.login({ username: 'bob', password: 'a temporary one-time pw', source: '10.3.3.3' });
      expect(tok3.mustChangePassword).toBe(true);
      const rows = await audit.list({ action: 'token.refused', limit: 10 });
      expect(rows.length).toBeGreaterThan(0);
    });

    it('user names are unique regardless of case; the last global admin cannot be removed', async () => {
      expect(await reasonOf(identity.admin.createUser(admin, { username: 'BOB', password: 'another long password', roles: [] }))).toBe('conflict:user-exists');
      expect(await reasonOf(identity.admin.createDepartment(admin, { name: 'Cardiology' }))).toBe('conflict:department-exists');
      await identity.admin.createUser(admin, { username: 'root2', password: 'second global admin', roles: [], globalAdmin: true });
      const root2 = (await identity.login({ username: 'root2', password: 'second global admin', source: '10.4.4.4' })).accessToken;
      const r2 = (await identity.authenticateAccessToken(root2))!;
      expect(await reasonOf(identity.admin.deleteUser(admin, 'admin'))).toBe('invalid:cannot-change-self');
      await identity.admin.deleteUser(r2, 'admin');
      // root2 is now the only global admin: it cannot demote itself, and nobody (not even
      // the system principal, as the CLI acts) can disable or delete it.
      expect(await reasonOf(identity.admin.updateUser(r2, 'root2', { globalAdmin: false }))).toBe('invalid:cannot-change-self');
      expect(await reasonOf(identity.admin.updateUser(systemPrincipal, 'root2', { disabled: true }))).toBe('conflict:last-global-admin');
      expect(await reasonOf(identity.admin.deleteUser(systemPrincipal, 'root2'))).toBe('conflict:last-global-admin');
      admin = r2;
    });
  });

  describe('lockout in the database', () => {
    it('locks an account after 5 failures whatever the password, for a growing interval, counted atomically', async () => {
      await identity.admin.createUser(admin, { username: 'carol', password: 'his long secret phrase', roles: [{ department: 'cardiology', role: 'reader' }] });
      // Five concurrent failures: row locks make sure every one is counted.
      await Promise.all(
        Array.from({ length: 5 }, () => identity.login({ username: 'carol', password: 'guess', source: `10.5.5.${Math.floor(Math.random() * 200)}` }).catch(() => undefined)),
      );
      expect(await reasonOf(identity.login({ username: 'carol', password: 'his long secret phrase', source: '10.6.6.6' }))).toBe('unauthenticated:locked');
      const row = await t.db('lockouts').where({ key: 'user:carol' }).first();
      expect(row.lock_count).toBe(1);
      const first = new Date(row.locked_until).getTime() - clock.getTime();
      expect(first).toBeGreaterThan(4 * 60_000);
      expect(first).toBeLessThanOrEqual(5 * 60_000);
      // After the lock, five more failures lock it for twice as long.
      clock = new Date(new Date(row.locked_until).getTime() + 1000);
      for (let i = 0; i < 5; i++) await identity.login({ username: 'carol', password: 'guess again', source: '10.6.6.7' }).catch(() => undefined);
      const row2 = await t.db('lockouts').where({ key: 'user:carol' }).first();
      expect(row2.lock_count).toBe(2);
      expect(new Date(row2.locked_until).getTime() - clock.getTime()).toBe(10 * 60_000);
      // Once the lock is over the right password works again and clears the account counter.
      clock = new Date(new Date(row2.locked_until).getTime() + 1000);
      expect((await identity.login({ username: 'carol', password: 'his long secret phrase', source: '10.6.6.8' })).accessToken).toBeTruthy();
      expect(await t.db('lockouts').where({ key: 'user:carol' }).first()).toBeUndefined();
      const denied = await audit.list({ action: 'login', outcome: 'denied', limit: 100 });
      expect(denied.some((r) => r.details.reason === 'locked' && r.details.name === 'carol')).toBe(true);
    });

    it('unknown accounts lock the same way (no user enumeration) and device passcodes lock too', async () => {
      for (let i = 0; i < 5; i++) await identity.login({ username: 'nobody-here', password: 'x', source: '10.7.7.7' }).catch(() => undefined);
      expect(await reasonOf(identity.login({ username: 'nobody-here', password: 'x', source: '10.7.7.8' }))).toBe('unauthenticated:locked');
      for (let i = 0; i < 5; i++) await identity.authenticateDevicePasscode({ aeTitle: 'PACS2', passcode: 'wrong', source: '10.8.8.8' });
      expect(await t.db('lockouts').where({ key: 'device:PACS2' }).first()).toMatchObject({ lock_count: 1 });
    });

    it('prunes quiet rows', async () => {
      clock = new Date(clock.getTime() + 3 * 24 * 60 * 60_000);
      expect(await identity.pruneLockouts()).toBeGreaterThan(0);
      clock = new Date();
    });
  });
});

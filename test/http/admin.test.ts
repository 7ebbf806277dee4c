// The admin API over real HTTPS: the authorization matrix where it applies (manage,
// grants), department admins confined to their departments, privilege escalation
// refused, closed schemas, the lifecycle of departments, users, devices and their
// credentials, the audit trail with its filters, and tampering found by verification.

import { X509Certificate, webcrypto } from 'node:crypto';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { x509 } from '../../src/pki/x509-lib.js';
import { AUTHZ_MATRIX, GRANT_MATRIX, MATRIX_PRINCIPALS, type MatrixPrincipalName } from '../helpers/authz-matrix.js';
import { databasesUnderTest } from '../helpers/db.js';
import { expectErrorBody } from '../helpers/error-body.js';
import { ADMIN_PASSWORD as ADMIN_PW } from '../helpers/fixtures.js';
import { startTestServer, tempDir, testPki, type HttpResponse, type TestServer } from '../helpers/http.js';

const USER_PW = 'matrix secret passphrase';

let pki: Pki;
beforeAll(async () => {
  pki = await testPki();
});

const refused = (r: HttpResponse, status: number, code?: string) => expectErrorBody(r, status, code);

describe.each(databasesUnderTest())('admin API on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let dir: string;
  let s: TestServer;
  let root: string;
  const tokens = {} as Record<MatrixPrincipalName, string>;
  let seq = 0;
  const unique = (p: string) => `${p}-${++seq}`;
  const req = (who: MatrixPrincipalName | string, method: string, url: string, body?: unknown) =>
    s.request(method, url, { token: who in tokens ? tokens[who as MatrixPrincipalName] : who, body });

  beforeAll(async () => {
    t = await dbu.open();
    dir = await tempDir();
    s = await startTestServer({ db: t.db, pki, dataDir: dir, adminPassword: ADMIN_PW });
    root = await s.login('admin', ADMIN_PW);
    for (const name of ['cardiology', 'radiology']) expect((await req(root, 'POST', '/admin/departments', { name })).status).toBe(201);
    for (const [name, p] of Object.entries(MATRIX_PRINCIPALS) as [MatrixPrincipalName, (typeof MATRIX_PRINCIPALS)[MatrixPrincipalName]][]) {
      if (p.kind === 'user') {
        const r = await req(root, 'POST', '/admin/users', { username: name, password: USER_PW, roles: p.roles, globalAdmin: p.globalAdmin });
        expect(r.status, r.text).toBe(201);
        tokens[name] = await s.login(name, USER_PW);
      } else {
        const r = await req(root, 'POST', '/admin/devices', { aeTitle: name.slice(0, 16).toUpperCase(), roles: p.roles });
        expect(r.status, r.text).toBe(201);
      }
    }
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  describe('the authorization matrix through the admin API', () => {
    const manageCases = AUTHZ_MATRIX.filter((c) => c.action === 'manage' && MATRIX_PRINCIPALS[c.principal].kind === 'user');

    it.each(manageCases)('$principal manages $department → $expected', async (c) => {
      // Managing a department = creating an account in it (with a role anyone may grant there).
      const r = await req(c.principal, 'POST', '/admin/users', { username: unique('m'), password: USER_PW, roles: [{ department: c.department, role: 'reader' }] });
      if (c.expected) expect(r.status, r.text).toBe(201);
      else refused(r, 403);
    });

    it.each(GRANT_MATRIX)('$granter grants $role in $department → $expected', async (c) => {
      const target = unique('target');
      expect((await req(root, 'POST', '/admin/users', { username: target, password: USER_PW, roles: [{ department: 'cardiology', role: 'reader' }] })).status).toBe(201);
      const r = await req(c.granter, 'POST', `/admin/users/${target}/roles`, { department: c.department, role: c.role });
      if (c.expected) {
        expect(r.status, r.text).toBe(200);
        expect(r.body.roles).toContainEqual({ department: c.department, role: c.role });
      } else {
        refused(r, 403);
      }
    });
  });

  describe('department admins see and change only their departments', () => {
    it('lists only their departments, their accounts, and only their roles of shared accounts', async () => {
      const deps = await req('cardiology-admin', 'GET', '/admin/departments');
      expect(deps.body.departments.map((d: any) => d.name)).toEqual(['cardiology']);
      const users = await req('cardiology-admin', 'GET', '/admin/users');
      const names = users.body.users.map((u: any) => u.username);
      expect(names).toContain('cardiology-reader');
      expect(names).toContain('cardiology-reader-radiology-writer');
      expect(names).not.toContain('global-admin');
      expect(names).not.toContain('no-roles');
      expect(names).not.toContain('admin');
      const shared = users.body.users.find((u: any) => u.username === 'cardiology-reader-radiology-writer');
      expect(shared.roles).toEqual([{ department: 'cardiology', role: 'reader' }]);
      for (const u of users.body.users) for (const r of u.roles) expect(r.department).toBe('cardiology');
      const devices = await req('cardiology-admin', 'GET', '/admin/devices');
      expect(devices.body.devices).toEqual([]);
    });

    it('other departments and their accounts do not exist for them (404), shared accounts are forbidden (403)', async () => {
      // Byte for byte what a name that does not exist gets.
      for (const [hidden, missing] of [
        ['/admin/departments/radiology', '/admin/departments/nowhere'],
        ['/admin/users/no-roles', '/admin/users/nobody-at-all'],
        ['/admin/devices/RADIOLOGY-MODALI', '/admin/devices/NO-SUCH-AE'],
      ]) {
        const [h, m] = [await req('cardiology-admin', 'GET', hidden), await req('cardiology-admin', 'GET', missing)];
        expect(h.status).toBe(404);
        expect(h.text).toBe(m.text);
      }
      refused(await req('cardiology-admin', 'GET', '/admin/departments/radiology'), 404, 'not-found');
      refused(await req('cardiology-admin', 'GET', '/admin/users/no-roles'), 404, 'not-found');
      refused(await req('cardiology-admin', 'GET', '/admin/users/global-admin'), 404, 'not-found');
      refused(await req('cardiology-admin', 'GET', '/admin/devices/RADIOLOGY-MODALI'), 404);
      refused(await req('cardiology-admin', 'PATCH', '/admin/devices/RADIOLOGY-MODALI', { disabled: true }), 404);
      refused(await req('cardiology-admin', 'DELETE', '/admin/devices/RADIOLOGY-MODALI'), 404);
      refused(await req('cardiology-admin', 'POST', '/admin/devices/RADIOLOGY-MODALI/certificate', {}), 404);
      refused(await req('cardiology-admin', 'PUT', '/admin/devices/RADIOLOGY-MODALI/passcode', { passcode: 'a long passcode here' }), 404);
      refused(await req('cardiology-admin', 'PATCH', '/admin/users/cardiology-reader-radiology-writer', { disabled: true }), 403, 'cannot-manage-account');
      refused(await req('cardiology-admin', 'DELETE', '/admin/users/cardiology-reader-radiology-writer'), 403, 'cannot-manage-account');
      refused(await req('cardiology-admin', 'PATCH', '/admin/users/cardiology-reader-radiology-writer', { password: 'taking it over now' }), 403);
      refused(await req('cardiology-admin', 'DELETE', '/admin/users/cardiology-reader-radiology-writer/roles/radiology/writer'), 403, 'cannot-grant');
      refused(await req('cardiology-admin', 'POST', '/admin/devices', { aeTitle: 'SNEAKY', roles: [{ department: 'radiology', role: 'writer' }] }), 403, 'cannot-grant');
      refused(await req('cardiology-admin', 'POST', '/admin/departments', { name: 'my-own' }), 403, 'global-admin-required');
      refused(await req('cardiology-admin', 'DELETE', '/admin/departments/radiology'), 403);
      refused(await req('cardiology-admin', 'PATCH', '/admin/departments/cardiology', { disabled: true }), 403, 'global-admin-required');
      refused(await req('cardiology-admin', 'GET', '/admin/audit'), 403, 'global-admin-required');
      // nothing happened
      const shared = await req(root, 'GET', '/admin/users/cardiology-reader-radiology-writer');
      expect(shared.body.disabled).toBe(false);
      expect(shared.body.roles).toHaveLength(2);
    });

    it('they manage accounts that live entirely in their departments', async () => {
      const u = unique('nurse');
      expect((await req('cardiology-admin', 'POST', '/admin/users', { username: u, password: USER_PW, roles: [{ department: 'cardiology', role: 'reader' }] })).status).toBe(201);
      expect((await req('cardiology-admin', 'POST', `/admin/users/${u}/roles`, { department: 'cardiology', role: 'writer' })).status).toBe(200);
      expect((await req('cardiology-admin', 'PATCH', `/admin/users/${u}`, { disabled: true })).body.disabled).toBe(true);
      expect((await req('cardiology-admin', 'PATCH', `/admin/users/${u}`, { password: 'a fresh one-time pw' })).body.mustChangePassword).toBe(true);
      expect((await req('cardiology-admin', 'DELETE', `/admin/users/${u}/roles/cardiology/writer`)).status).toBe(204);
      expect((await req('cardiology-admin', 'DELETE', `/admin/users/${u}`)).status).toBe(204);
      const ae = `ECG${seq}`;
      expect((await req('cardiology-admin', 'POST', '/admin/devices', { aeTitle: ae, roles: [{ department: 'cardiology', role: 'writer' }] })).status).toBe(201);
      expect((await req('cardiology-admin', 'POST', `/admin/devices/${ae}/certificate`)).status).toBe(201);
      expect((await req('cardiology-admin', 'PUT', `/admin/devices/${ae}/passcode`, { passcode: 'ecg cart passcode 1' })).status).toBe(204);
      expect((await req('cardiology-admin', 'DELETE', `/admin/devices/${ae}`)).status).toBe(204);
    });
  });

  describe('privilege escalation is refused', () => {
    it('by posting roles or flags one does not hold', async () => {
      refused(await req('cardiology-admin', 'POST', '/admin/users', { username: unique('x'), password: USER_PW, roles: [{ department: 'cardiology', role: 'admin' }] }), 403, 'cannot-grant');
      refused(await req('cardiology-admin', 'POST', '/admin/users', { username: unique('x'), password: USER_PW, roles: [{ department: 'cardiology', role: 'reader' }], globalAdmin: true }), 403, 'global-admin-required');
      refused(await req('cardiology-admin', 'POST', '/admin/users', { username: unique('x'), password: USER_PW, roles: [{ department: 'cardiology', role: 'reader' }, { department: 'radiology', role: 'reader' }] }), 403, 'cannot-grant');
      const missingDept = await req('cardiology-admin', 'POST', '/admin/users', { username: 'same-name', password: USER_PW, roles: [{ department: 'no-such-dept', role: 'reader' }] });
      refused(missingDept, 403, 'cannot-grant');
      const otherDept = await req('cardiology-admin', 'POST', '/admin/users', { username: 'same-name', password: USER_PW, roles: [{ department: 'Radiology', role: 'reader' }] });
      expect(otherDept.text).toBe(missingDept.text.replace('no-such-dept', 'Radiology'));
      refused(await req('cardiology-admin', 'POST', '/admin/users/cardiology-admin/roles', { department: 'radiology', role: 'admin' }), 403);
      refused(await req('cardiology-admin', 'POST', '/admin/users/cardiology-reader/roles', { department: 'cardiology', role: 'admin' }), 403, 'cannot-grant');
      refused(await req('cardiology-admin', 'PATCH', '/admin/users/cardiology-admin', { globalAdmin: true }), 403, 'global-admin-required');
      refused(await req('cardiology-writer', 'POST', '/admin/users/cardiology-writer/roles', { department: 'cardiology', role: 'reader' }), 403, 'not-an-administrator');
      refused(await req('no-roles', 'POST', '/admin/users', { username: unique('x'), password: USER_PW, roles: [] }), 403, 'not-an-administrator');
      refused(await req('cardiology-admin', 'POST', '/admin/users', { username: unique('orphan'), password: USER_PW, roles: [] }), 400, 'roles-required');
      const me = await req(root, 'GET', '/admin/users/cardiology-admin');
      expect(me.body).toMatchObject({ globalAdmin: false, roles: [{ department: 'cardiology', role: 'admin' }] });
      // each refusal is in the audit trail as a denial
      const denied = await req(root, 'GET', '/admin/audit?principal=cardiology-admin&outcome=denied&limit=1000');
      expect(denied.body.events.length).toBeGreaterThanOrEqual(7);
    });

    it('a global admin cannot lock the system out', async () => {
      refused(await req(root, 'PATCH', '/admin/users/admin', { disabled: true }), 400, 'cannot-change-self');
      refused(await req(root, 'DELETE', '/admin/users/admin'), 400, 'cannot-change-self');
    });
  });

  describe('closed schemas', () => {
    const bodies: [string, string, Record<string, unknown>][] = [
      ['POST', '/admin/departments', { name: 'extra-dept' }],
      ['PATCH', '/admin/departments/cardiology', { disabled: false }],
      ['POST', '/admin/users', { username: 'extra-user', password: USER_PW, roles: [] }],
      ['PATCH', '/admin/users/cardiology-reader', { disabled: false }],
      ['POST', '/admin/users/cardiology-reader/roles', { department: 'cardiology', role: 'reader' }],
      ['POST', '/admin/devices', { aeTitle: 'EXTRA', roles: [] }],
      ['PATCH', '/admin/devices/RADIOLOGY-MODALI', { disabled: false }],
      ['POST', '/admin/devices/RADIOLOGY-MODALI/roles', { department: 'radiology', role: 'writer' }],
      ['POST', '/admin/devices/RADIOLOGY-MODALI/certificate', { days: 10 }],
      ['PUT', '/admin/devices/RADIOLOGY-MODALI/passcode', { passcode: 'a long passcode here' }],
      ['POST', '/auth/token', { username: 'admin', password: ADMIN_PW }],
      ['POST', '/auth/password', { currentPassword: ADMIN_PW, newPassword: 'never applied 123' }],
    ];
    it.each(bodies)('%s %s refuses an unknown field', async (method, url, body) => {
      refused(await req(root, method, url, { ...body, isAdmin: true }), 400, 'invalid-request');
    });

    it('refuses wrong types (no coercion), bad names, empty patches and nested unknown fields', async () => {
      refused(await req(root, 'POST', '/admin/departments', { name: 7 }), 400);
      refused(await req(root, 'PATCH', '/admin/users/cardiology-reader', { disabled: 'true' }), 400);
      refused(await req(root, 'POST', '/admin/devices', { aeTitle: 'PORTY', roles: [], host: 'h', port: '104' }), 400);
      refused(await req(root, 'PATCH', '/admin/users/cardiology-reader', {}), 400);
      refused(await req(root, 'POST', '/admin/users', { username: 'nested', password: USER_PW, roles: [{ department: 'cardiology', role: 'reader', globalAdmin: true }] }), 400);
      refused(await req(root, 'POST', '/admin/users', { username: 'roles', password: USER_PW, roles: [{ department: 'cardiology', role: 'superuser' }] }), 400);
      refused(await req(root, 'POST', '/admin/users', { username: '../etc', password: USER_PW, roles: [] }), 400);
      refused(await req(root, 'POST', '/admin/devices', { aeTitle: 'BACK\\SLASH', roles: [] }), 400);
      refused(await req(root, 'GET', '/admin/audit?limit=5000'), 400);
      refused(await req(root, 'GET', '/admin/audit?evil=1'), 400);
    });
  });

  describe('lifecycle', () => {
    it('departments: create, read, disable, delete; conflicts; a department with studies stays', async () => {
      const created = await req(root, 'POST', '/admin/departments', { name: 'Oncology Ward' });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({ name: 'Oncology Ward', disabled: false, createdAt: expect.any(String) });
      refused(await req(root, 'POST', '/admin/departments', { name: 'oncology ward' }), 409, 'department-exists');
      expect((await req(root, 'GET', '/admin/departments/Oncology%20Ward')).status).toBe(200);
      expect((await req(root, 'PATCH', '/admin/departments/Oncology%20Ward', { disabled: true })).body.disabled).toBe(true);
      expect((await req(root, 'DELETE', '/admin/departments/Oncology%20Ward')).status).toBe(204);
      refused(await req(root, 'DELETE', '/admin/departments/Oncology%20Ward'), 404);
      await req(root, 'POST', '/admin/departments', { name: 'archive' });
      const dep = await t.db('departments').where({ name: 'archive' }).first();
      await t.db('studies').insert({ study_uid: '1.2.3.4.5', department_id: dep.id });
      refused(await req(root, 'DELETE', '/admin/departments/archive'), 409, 'department-not-empty');
    });

    it('devices: destination, passcode, generated certificate, CSR, revocation, deletion', async () => {
      const created = await req(root, 'POST', '/admin/devices', { aeTitle: 'MR 7', roles: [{ department: 'radiology', role: 'writer' }], host: 'mr7.example.org', port: 104 });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ aeTitle: 'MR 7', host: 'mr7.example.org', port: 104, certificate: null, hasPasscode: false });
      refused(await req(root, 'POST', '/admin/devices', { aeTitle: 'MR 7', roles: [] }), 409, 'device-exists');
      refused(await req(root, 'PATCH', '/admin/devices/MR%207', { port: null }), 400, 'bad-destination');
      expect((await req(root, 'PATCH', '/admin/devices/MR%207', { host: null, port: null })).body).toMatchObject({ host: null, port: null });
      expect((await req(root, 'PUT', '/admin/devices/MR%207/passcode', { passcode: 'mr seven passcode' })).status).toBe(204);
      expect((await req(root, 'GET', '/admin/devices/MR%207')).body.hasPasscode).toBe(true);

      const gen = await req(root, 'POST', '/admin/devices/MR%207/certificate');
      expect(gen.status).toBe(201);
      expect(gen.headers['cache-control']).toBe('no-store');
      expect(gen.body.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      // ECDSA P-256 unless RSA is asked for (pki/keys.ts DeviceKeyType).
      expect((await import('node:crypto')).createPrivateKey(gen.body.privateKey).asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
      expect(gen.body.ca).toBe(pki.caCertPem);
      const cert = new X509Certificate(gen.body.certificate);
      expect(cert.verify(new X509Certificate(pki.caCertPem).publicKey)).toBe(true);
      expect(cert.subject).toBe('CN=MR 7');
      expect(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(gen.body.privateKey))).toBe(true);
      expect((await req(root, 'GET', '/admin/devices/MR%207')).body.certificate.fingerprint256).toBe(gen.body.fingerprint256);
      // The key is shown once: nothing stored can give it back.
      const row = await t.db('devices').where({ ae_title: 'MR 7' }).first();
      expect(JSON.stringify(row)).not.toContain('PRIVATE KEY');

      // A CSR: the device keeps its key; the old certificate is revoked.
      const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
      const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=I choose my own name', keys: keys as unknown as CryptoKeyPair, signingAlgorithm: alg });
      const signed = await req(root, 'POST', '/admin/devices/MR%207/certificate', { csr: csr.toString('pem'), days: 30 });
      expect(signed.status, signed.text).toBe(201);
      expect(signed.body.privateKey).toBeUndefined();
      const c2 = new X509Certificate(signed.body.certificate);
      expect(c2.subject).toBe('CN=MR 7');
      expect(Buffer.from(c2.publicKey.export({ type: 'spki', format: 'der' })).equals(Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)))).toBe(true);
      expect(await s.identity.authenticateDeviceCertificate({ fingerprint256: gen.body.fingerprint256, callingAe: 'MR 7' })).toBeNull();
      expect(await s.identity.authenticateDeviceCertificate({ fingerprint256: signed.body.fingerprint256, callingAe: 'MR 7' })).not.toBeNull();
      refused(await req(root, 'POST', '/admin/devices/MR%207/certificate', { csr: 'not a csr' }), 400, 'bad-csr');
      // A key type only when Tresor makes the key; only the two it makes.
      refused(await req(root, 'POST', '/admin/devices/MR%207/certificate', { csr: csr.toString('pem'), keyType: 'rsa' }), 400, 'bad-key-type');
      expect((await req(root, 'POST', '/admin/devices/MR%207/certificate', { keyType: 'dsa' })).status).toBe(400);
      expect(await s.identity.authenticateDeviceCertificate({ fingerprint256: signed.body.fingerprint256, callingAe: 'MR 7' })).not.toBeNull();
      const rsa = await req(root, 'POST', '/admin/devices/MR%207/certificate', { keyType: 'rsa' });
      expect(rsa.status, rsa.text).toBe(201);
      expect((await import('node:crypto')).createPrivateKey(rsa.body.privateKey).asymmetricKeyDetails).toMatchObject({ modulusLength: 3072 });
      expect(new X509Certificate(rsa.body.certificate).checkPrivateKey((await import('node:crypto')).createPrivateKey(rsa.body.privateKey))).toBe(true);
      expect(await s.identity.authenticateDeviceCertificate({ fingerprint256: rsa.body.fingerprint256, callingAe: 'MR 7' })).not.toBeNull();

      expect((await req(root, 'DELETE', '/admin/devices/MR%207/certificate')).status).toBe(204);
      expect(await s.identity.authenticateDeviceCertificate({ fingerprint256: rsa.body.fingerprint256, callingAe: 'MR 7' })).toBeNull();
      expect(await s.identity.authenticateDeviceCertificate({ fingerprint256: signed.body.fingerprint256, callingAe: 'MR 7' })).toBeNull();
      expect((await req(root, 'DELETE', '/admin/devices/MR%207/passcode')).status).toBe(204);
      refused(await req(root, 'DELETE', '/admin/devices/MR%207/passcode'), 404, 'no-passcode');
      expect((await req(root, 'DELETE', '/admin/devices/MR%207/roles/radiology/writer')).status).toBe(204);
      expect((await req(root, 'POST', '/admin/devices/MR%207/roles', { department: 'radiology', role: 'reader' })).body.roles).toEqual([{ department: 'radiology', role: 'reader' }]);
      refused(await req(root, 'POST', '/admin/devices/MR%207/roles', { department: 'radiology', role: 'admin' }), 400, 'bad-role');
      expect((await req(root, 'DELETE', '/admin/devices/MR%207')).status).toBe(204);
      refused(await req(root, 'GET', '/admin/devices/MR%207'), 404);
    });
  });

  describe('audit trail', () => {
    it('records every change, and filters by action, outcome, principal, study, time, with paging', async () => {
      const all = await req(root, 'GET', '/admin/audit?limit=1000');
      expect(all.status).toBe(200);
      expect(all.body.verification).toMatchObject({ ok: true, count: expect.any(Number), legacy: 0, macChecked: true });
      const actions = new Set(all.body.events.filter((e: any) => e.outcome === 'success').map((e: any) => e.action));
      for (const a of [
        'bootstrap.admin', 'login', 'admin.department.create', 'admin.department.update', 'admin.department.delete',
        'admin.user.create', 'admin.user.update', 'admin.user.delete', 'admin.user.role-grant', 'admin.user.role-revoke',
        'admin.device.create', 'admin.device.update', 'admin.device.delete', 'admin.device.role-grant', 'admin.device.role-revoke',
        'admin.device.certificate-issue', 'admin.device.certificate-revoke', 'admin.device.passcode-set', 'admin.device.passcode-clear',
      ]) {
        expect(actions, a).toContain(a);
      }
      // No secret ever lands in the trail.
      for (const secret of [ADMIN_PW, USER_PW, 'mr seven passcode', 'a fresh one-time pw', 'PRIVATE KEY']) expect(all.text).not.toContain(secret);
      const issue = all.body.events.find((e: any) => e.action === 'admin.device.certificate-issue' && e.outcome === 'success' && e.details.csr === true);
      expect(issue.details).toMatchObject({ aeTitle: 'MR 7', fingerprint256: expect.stringMatching(/^[0-9a-f]{64}$/), revoked: expect.stringMatching(/^[0-9a-f]{64}$/) });

      const byAction = await req(root, 'GET', '/admin/audit?action=admin.user.create&outcome=success');
      expect(byAction.body.events.length).toBeGreaterThan(0);
      expect(byAction.body.events.every((e: any) => e.action === 'admin.user.create' && e.outcome === 'success')).toBe(true);
      const byPrincipal = await req(root, 'GET', '/admin/audit?principal=cardiology-admin&verify=false');
      expect(byPrincipal.body.verification).toBeUndefined();
      expect(byPrincipal.body.events.every((e: any) => e.principalName === 'cardiology-admin')).toBe(true);
      await s.audit.record({ action: 'store', outcome: 'success', principal: { kind: 'device', id: 1, name: 'CT1' }, studyUids: ['1.2.840.99.1'] });
      const byStudy = await req(root, 'GET', '/admin/audit?study=1.2.840.99.1');
      expect(byStudy.body.events.map((e: any) => e.action)).toEqual(['store']);
      expect((await req(root, 'GET', '/admin/audit?to=2000-01-01T00:00:00Z')).body.events).toEqual([]);
      expect((await req(root, 'GET', `/admin/audit?from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).body.events).toEqual([]);
      const page1 = await req(root, 'GET', '/admin/audit?limit=3');
      expect(page1.body.events).toHaveLength(3);
      const page2 = await req(root, 'GET', `/admin/audit?limit=3&before=${page1.body.events[2].id}`);
      expect(page2.body.events[0].id).toBe(page1.body.events[2].id - 1);
    });

    it('is append-only, and verification names the row that was altered or removed', async () => {
      const rows = await t.db('audit_events').orderBy('id').select('id', 'details');
      const victim = rows[Math.floor(rows.length / 2)];
      await expect(t.db('audit_events').where({ id: victim.id }).update({ outcome: 'success' })).rejects.toThrow(/append-only/);
      await expect(t.db('audit_events').where({ id: victim.id }).delete()).rejects.toThrow(/append-only/);

      await t.db.raw('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change');
      try {
        await t.db('audit_events').where({ id: victim.id }).update({ details: JSON.stringify({ ...victim.details, note: 'rewritten' }) });
        const v1 = await req(root, 'GET', '/admin/audit?limit=1');
        expect(v1.body.verification).toMatchObject({ ok: false, count: expect.any(Number), brokenAt: victim.id, reason: 'row-hash-mismatch' });
        // Put it back exactly: the chain verifies again.
        await t.db('audit_events').where({ id: victim.id }).update({ details: JSON.stringify(victim.details) });
        expect((await req(root, 'GET', '/admin/audit?limit=1')).body.verification.ok).toBe(true);
        // Remove a row: the next one no longer links to its predecessor.
        await t.db('audit_events').where({ id: victim.id }).delete();
        const next = rows.find((r: any) => r.id > victim.id)!;
        const v2 = await req(root, 'GET', '/admin/audit?limit=1');
        expect(v2.body.verification).toMatchObject({ ok: false, brokenAt: next.id, reason: 'previous-hash-mismatch' });
      } finally {
        await t.db.raw('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_change');
      }
    });
  });
});

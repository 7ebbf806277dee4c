// Issue 10: `tresor password` — a user changes their own password from the command line,
// the forced first change included (a password an administrator set must be changed at
// the next login). The CLI runs as a child (src through tsx) against a real HTTPS server;
// the server checks the rules, ends the old password's tokens, and audits.

import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databasesUnderTest } from '../helpers/db.js';
import { ADMIN_PASSWORD, USER_PASSWORD } from '../helpers/fixtures.js';
import { startTestServer, tempDir, testPki, type TestServer } from '../helpers/http.js';

const ROOT = path.resolve(__dirname, '../..');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('tresor password', () => {
  let t: Awaited<ReturnType<ReturnType<typeof databasesUnderTest>[number]['open']>>;
  let s: TestServer;
  let dir: string;
  let caFile: string;

  async function secret(name: string, value: string): Promise<string> {
    const f = path.join(dir, name);
    await fs.writeFile(f, `${value}\n`, { mode: 0o600 });
    return f;
  }

  function tresor(user: string, currentFile: string, args: string[]): Promise<Run> {
    const env = { ...process.env, TRESOR_URL: s.url, TRESOR_CA: caFile, TRESOR_USER: user, TRESOR_PASSWORD_FILE: currentFile };
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'cli.ts'), 'password', ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      );
    });
  }

  beforeAll(async () => {
    t = await databasesUnderTest()[0]!.open();
    dir = await tempDir('tresor-password-');
    s = await startTestServer({ db: t.db, pki: await testPki(), dataDir: dir, adminPassword: ADMIN_PASSWORD });
    caFile = path.join(dir, 'ca.crt');
    await fs.writeFile(caFile, s.ca);
    const admin = await s.login('admin', ADMIN_PASSWORD);
    expect((await s.request('POST', '/admin/departments', { token: admin, body: { name: 'radiology' } })).status).toBe(201);
    expect((await s.request('POST', '/admin/users', { token: admin, body: { username: 'bob', password: USER_PASSWORD, roles: [{ department: 'radiology', role: 'reader' }] } })).status).toBe(201);
    // An administrator's reset: bob must change it at the next login.
    expect((await s.request('PATCH', '/admin/users/bob', { token: admin, body: { password: 'one-time-Reset-4711' } })).status).toBe(200);
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('does the forced change of a one-time password; the old password and its token stop working', async () => {
    const before = await s.request('POST', '/auth/token', { body: { username: 'bob', password: 'one-time-Reset-4711' } });
    expect(before.body.password_change_required).toBe(true);
    const oldToken = before.body.access_token as string;

    // A password breaking the rules is refused by the server (exit 1) with its reason.
    const weak = await tresor('bob', await secret('cur', 'one-time-Reset-4711'), ['--new-password-file', await secret('weak', 'short')]);
    expect(weak.code, weak.stderr).toBe(1);
    expect(weak.stderr).toMatch(/password not changed: .*12/);

    const ok = await tresor('bob', await secret('cur2', 'one-time-Reset-4711'), ['--new-password-file', await secret('new', 'a much better passphrase')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/password changed for bob/);

    const after = await s.request('POST', '/auth/token', { body: { username: 'bob', password: 'a much better passphrase' } });
    expect(after.status).toBe(200);
    expect(after.body.password_change_required).toBeFalsy();
    expect((await s.request('POST', '/auth/token', { body: { username: 'bob', password: 'one-time-Reset-4711' } })).status).toBe(401);
    // The one-time password's token (which could still call POST /auth/password) is dead.
    expect((await s.request('POST', '/auth/password', { token: oldToken, body: { currentPassword: 'a much better passphrase', newPassword: 'yet another passphrase' } })).status).toBe(401);
    const audit = await s.request('GET', '/admin/audit?principal=bob', { token: await s.login('admin', ADMIN_PASSWORD) });
    expect(JSON.stringify(audit.body.events)).toMatch(/password/);
  });

  it('says what to do when no new password is given and there is no terminal (exit 2)', async () => {
    const r = await tresor('bob', await secret('cur3', 'a much better passphrase'), []);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--new-password-file/);
  });

  it('a wrong current password is a refused login (exit 2), nothing changes', async () => {
    const r = await tresor('bob', await secret('bad', 'not the password at all'), ['--new-password-file', await secret('new2', 'another good passphrase')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/login as bob refused/);
    expect((await s.request('POST', '/auth/token', { body: { username: 'bob', password: 'a much better passphrase' } })).status).toBe(200);
  });
});

// The console's cookie session over a real HTTPS socket: the cookie's attributes, the
// cookie on /admin and /dicomweb, every CSRF attack refused, logout, idle and absolute
// expiry (a movable clock, no sleeps), a disabled user, the forced password change,
// lockout with its retry time, department isolation and a reader on admin endpoints.

import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { expectErrorBody } from '../helpers/error-body.js';
import { ADMIN_PASSWORD, USER_PASSWORD } from '../helpers/fixtures.js';
import { multipart, raw } from '../helpers/dicomweb.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { startTestServer, tempDir, testPki, type HttpResponse, type TestServer } from '../helpers/http.js';

const COOKIE = '__Host-tresor_session';

let pki: Pki;
beforeAll(async () => {
  pki = await testPki();
});

export interface Browser {
  cookie: string;
  csrf: string;
  body: any;
}

/** The Set-Cookie line of the session cookie in a response. */
function sessionSetCookie(r: HttpResponse): string {
  const lines = [r.headers['set-cookie'] ?? []].flat();
  const line = lines.find((l) => l.startsWith(`${COOKIE}=`));
  if (!line) throw new Error(`no session cookie in ${JSON.stringify(lines)}`);
  return line;
}

describe.each(databasesUnderTest())('browser session on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let dir: string;
  let s: TestServer;
  let adminToken: string;
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);

  async function loginBrowser(username: string, password: string): Promise<Browser> {
    const r = await s.request('POST', '/auth/session', { body: { username, password } });
    expect(r.status, r.text).toBe(200);
    const line = sessionSetCookie(r);
    return { cookie: line.split(';')[0]!, csrf: r.body.csrfToken, body: r.body };
  }
  const withCookie = (b: Browser, extra: Record<string, string> = {}) => ({ headers: { cookie: b.cookie, ...extra } });
  const unsafe = (b: Browser, extra: Record<string, string> = {}) => withCookie(b, { 'x-csrf-token': b.csrf, origin: s.url, ...extra });

  beforeAll(async () => {
    t = await dbu.open();
    dir = await tempDir();
    s = await startTestServer({ db: t.db, pki, dataDir: dir, adminPassword: ADMIN_PASSWORD, now, lockoutPolicy: { accountThreshold: 3 } });
    adminToken = await s.login('admin', ADMIN_PASSWORD);
    for (const name of ['cardio', 'neuro']) expect((await s.request('POST', '/admin/departments', { token: adminToken, body: { name } })).status).toBe(201);
    for (const [username, department, role] of [['ann', 'cardio', 'admin'], ['ben', 'neuro', 'reader'], ['rita', 'cardio', 'reader']] as const) {
      const r = await s.request('POST', '/admin/users', { token: adminToken, body: { username, password: USER_PASSWORD, roles: [{ department, role }] } });
      expect(r.status, r.text).toBe(201);
    }
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('login sets a __Host- cookie with every attribute and returns the session body', async () => {
    const r = await s.request('POST', '/auth/session', { body: { username: 'ann', password: USER_PASSWORD } });
    expect(r.status).toBe(200);
    const line = sessionSetCookie(r);
    const attrs = line.split(';').map((a) => a.trim().toLowerCase());
    expect(attrs).toContain('httponly');
    expect(attrs).toContain('secure');
    expect(attrs).toContain('samesite=strict');
    expect(attrs).toContain('path=/');
    expect(attrs.some((a) => a.startsWith('domain'))).toBe(false);
    expect(line.split(';')[0]).toMatch(/^__Host-tresor_session=[A-Za-z0-9_-]{43}$/);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.body).toEqual({
      user: { username: 'ann', globalAdmin: false, mustChangePassword: false, roles: [{ department: 'cardio', role: 'admin' }] },
      csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      idleTimeoutSeconds: 30 * 60,
      expiresAt: expect.any(String),
    });
    expect(new Date(r.body.expiresAt).getTime() - Date.now()).toBeGreaterThan(11.9 * 3600_000);
    // Only a hash of the id is stored.
    const value = line.split(';')[0]!.split('=')[1]!;
    const rows = await t.db('browser_sessions').select('id_hash');
    expect(rows.some((row: any) => row.id_hash === value)).toBe(false);
    // GET /auth/session on reload gives the same body.
    const again = await s.request('GET', '/auth/session', { headers: { cookie: `${COOKIE}=${value}` } });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(r.body);
    // The cookie value is in no log line.
    expect(s.logs.filter((l) => l.includes(value))).toEqual([]);
  });

  it('the cookie works on /admin and /dicomweb (reads without a CSRF token)', async () => {
    const b = await loginBrowser('ann', USER_PASSWORD);
    const users = await s.request('GET', '/admin/users', withCookie(b));
    expect(users.status, users.text).toBe(200);
    expect(users.body.users.map((u: any) => u.username)).toContain('rita');
    const studies = await s.request('GET', '/dicomweb/studies', withCookie(b, { accept: 'application/dicom+json' }));
    expect([200, 204]).toContain(studies.status);
    // A state change with the token and our Origin works.
    const created = await s.request('POST', '/admin/users', { ...unsafe(b), body: { username: 'carl', password: USER_PASSWORD, roles: [{ department: 'cardio', role: 'reader' }] } });
    expect(created.status, created.text).toBe(201);
    // Without Origin (a non-browser client) the token alone is enough.
    const patched = await s.request('PATCH', '/admin/users/carl', { headers: { cookie: b.cookie, 'x-csrf-token': b.csrf }, body: { disabled: true } });
    expect(patched.status, patched.text).toBe(200);
  });

  it('refuses CSRF: no token, wrong token, foreign Origin, and changes nothing', async () => {
    const b = await loginBrowser('ann', USER_PASSWORD);
    const body = { username: 'mallory', password: USER_PASSWORD, roles: [{ department: 'cardio', role: 'admin' }] };
    const attempts: Record<string, string>[] = [
      { cookie: b.cookie },
      { cookie: b.cookie, origin: s.url },
      { cookie: b.cookie, 'x-csrf-token': 'A'.repeat(43), origin: s.url },
      { cookie: b.cookie, 'x-csrf-token': b.csrf.slice(0, 42), origin: s.url },
      { cookie: b.cookie, 'x-csrf-token': b.csrf, origin: 'https://evil.example' },
      { cookie: b.cookie, 'x-csrf-token': b.csrf, origin: 'null' },
      { cookie: b.cookie, 'x-csrf-token': b.csrf, origin: s.url.replace('https:', 'http:') },
    ];
    for (const headers of attempts) {
      const r = await s.request('POST', '/admin/users', { headers, body });
      expectErrorBody(r, 403, 'csrf');
    }
    expectErrorBody(await s.request('DELETE', '/auth/session', withCookie(b)), 403, 'csrf');
    // Login CSRF: a login posted by another site sets no cookie.
    const foreignLogin = await s.request('POST', '/auth/session', { headers: { origin: 'https://evil.example' }, body: { username: 'ann', password: USER_PASSWORD } });
    expectErrorBody(foreignLogin, 403, 'csrf');
    expect(foreignLogin.headers['set-cookie']).toBeUndefined();
    expect((await s.request('POST', '/auth/session', { headers: { origin: s.url }, body: { username: 'ann', password: USER_PASSWORD } })).status).toBe(200);
    expectErrorBody(await s.request('DELETE', '/dicomweb/studies/1.2.3', withCookie(b)), 403, 'csrf');
    expect(await t.db('users').where({ username: 'mallory' }).first()).toBeUndefined();
    // A bearer request needs neither (it is not ambient).
    const bearer = await s.request('GET', '/admin/users/ann', { token: adminToken, headers: { origin: 'https://evil.example' } });
    expect(bearer.status).toBe(200);
  });

  it('logout deletes the session: the old cookie gets 401 everywhere', async () => {
    const b = await loginBrowser('ann', USER_PASSWORD);
    const out = await s.request('DELETE', '/auth/session', unsafe(b));
    expect(out.status).toBe(204);
    const cleared = sessionSetCookie(out);
    expect(cleared).toMatch(/^__Host-tresor_session=;/);
    expect(cleared.toLowerCase()).toMatch(/expires=thu, 01 jan 1970/);
    for (const [method, url] of [['GET', '/auth/session'], ['GET', '/admin/users'], ['GET', '/dicomweb/studies'], ['DELETE', '/auth/session']] as const) {
      expectErrorBody(await s.request(method, url, unsafe(b)), 401, 'session-expired');
    }
    const audit = await s.request('GET', '/admin/audit?action=session.end', { token: adminToken });
    expect(audit.status).toBe(200);
    expect(audit.body.events.some((e: any) => e.principalName === 'ann' && e.details.reason === 'logout')).toBe(true);
    expect(JSON.stringify(audit.body)).not.toContain(b.cookie.split('=')[1]);
  });

  it('idle timeout ends a quiet session; activity keeps it alive; the absolute lifetime ends it anyway', async () => {
    const b = await loginBrowser('rita', USER_PASSWORD);
    try {
      // Active: a request every 20 minutes for 2 hours keeps the session.
      for (let i = 0; i < 6; i++) {
        offsetMs += 20 * 60_000;
        expect((await s.request('GET', '/dicomweb/studies', withCookie(b))).status).not.toBe(401);
      }
      // Quiet for 31 minutes: gone.
      offsetMs += 31 * 60_000;
      expectErrorBody(await s.request('GET', '/auth/session', withCookie(b)), 401, 'session-expired');

      const c = await loginBrowser('rita', USER_PASSWORD);
      for (let i = 0; i < 12 * 3 - 1; i++) {
        offsetMs += 20 * 60_000;
        expect((await s.request('GET', '/auth/session', withCookie(c))).status).toBe(200);
      }
      offsetMs += 21 * 60_000; // past 12 hours since login, never idle
      expectErrorBody(await s.request('GET', '/auth/session', withCookie(c)), 401, 'session-expired');
    } finally {
      offsetMs = 0;
    }
  });

  it("a disabled user's session dies at once, and so does one whose password was reset", async () => {
    const b = await loginBrowser('rita', USER_PASSWORD);
    expect((await s.request('PATCH', '/admin/users/rita', { token: adminToken, body: { disabled: true } })).status).toBe(200);
    expectErrorBody(await s.request('GET', '/dicomweb/studies', withCookie(b)), 401, 'session-expired');
    expect((await s.request('PATCH', '/admin/users/rita', { token: adminToken, body: { disabled: false } })).status).toBe(200);
    // Re-enabling does not bring the ended session back.
    expectErrorBody(await s.request('GET', '/auth/session', withCookie(b)), 401, 'session-expired');
    // An admin's password reset ends the sessions too (the token generation moves).
    const c = await loginBrowser('rita', USER_PASSWORD);
    expect((await s.request('PATCH', '/admin/users/rita', { token: adminToken, body: { password: 'another temporary phrase' } })).status).toBe(200);
    expectErrorBody(await s.request('GET', '/auth/session', withCookie(c)), 401, 'session-expired');
    const back = await loginBrowser('rita', 'another temporary phrase');
    const changed = await s.request('POST', '/auth/password', { ...unsafe(back), body: { currentPassword: 'another temporary phrase', newPassword: USER_PASSWORD } });
    expect(changed.status, changed.text).toBe(200);
  });

  it('a session that must change its password may only do that, then gets a fresh session', async () => {
    const reset = await s.request('PATCH', '/admin/users/ben', { token: adminToken, body: { password: 'a temporary passphrase' } });
    expect(reset.status, reset.text).toBe(200);
    const b = await loginBrowser('ben', 'a temporary passphrase');
    expect(b.body.user.mustChangePassword).toBe(true);
    expect((await s.request('GET', '/auth/session', withCookie(b))).status).toBe(200);
    expectErrorBody(await s.request('GET', '/dicomweb/studies', withCookie(b)), 403, 'password-change-required');
    expectErrorBody(await s.request('GET', '/admin/users', withCookie(b)), 403, 'password-change-required');
    // Without the CSRF token the change itself is refused too.
    expectErrorBody(await s.request('POST', '/auth/password', { ...withCookie(b), body: { currentPassword: 'a temporary passphrase', newPassword: USER_PASSWORD } }), 403, 'csrf');
    const changed = await s.request('POST', '/auth/password', { ...unsafe(b), body: { currentPassword: 'a temporary passphrase', newPassword: USER_PASSWORD } });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body.user.mustChangePassword).toBe(false);
    expect(changed.body.access_token).toBeUndefined();
    const fresh = sessionSetCookie(changed).split(';')[0]!;
    expect(fresh).not.toBe(b.cookie);
    // The old cookie is dead, the new one works.
    expectErrorBody(await s.request('GET', '/auth/session', withCookie(b)), 401, 'session-expired');
    expect((await s.request('GET', '/dicomweb/studies', { headers: { cookie: fresh } })).status).not.toBe(401);
    // DELETE /auth/session is allowed while a change is pending.
    const b2 = await loginBrowser('ben', USER_PASSWORD);
    expect((await s.request('DELETE', '/auth/session', unsafe(b2))).status).toBe(204);
  });

  it('a locked account is told when to retry (Retry-After and retryAfterSeconds)', async () => {
    for (let i = 0; i < 3; i++) {
      expectErrorBody(await s.request('POST', '/auth/session', { body: { username: 'carl', password: `wrong guess ${i}` } }), 401, 'bad-credentials');
    }
    const r = await s.request('POST', '/auth/session', { body: { username: 'carl', password: USER_PASSWORD } });
    expectErrorBody(r, 401, 'locked');
    const after = Number(r.headers['retry-after']);
    expect(after).toBeGreaterThan(200);
    expect(r.body.error.retryAfterSeconds).toBe(after);
    expect(r.body.error.message).toMatch(/try again in \d+ minutes/);
    expect(r.headers['set-cookie']).toBeUndefined();
  });

  it('department B cannot read department A through the cookie; a reader gets nothing from admin endpoints', async () => {
    const inst = reissue();
    const mp = multipart([{ body: inst.bytes }]);
    const stow = await raw(s.url, s.ca, 'POST', '/dicomweb/studies?department=cardio', {
      token: adminToken,
      headers: { 'content-type': mp.contentType, accept: 'application/dicom+json' },
      body: mp.body,
    });
    expect(stow.status, stow.text).toBe(200);
    const rita = await loginBrowser('rita', USER_PASSWORD);
    const ben = await loginBrowser('ben', USER_PASSWORD);
    const seen = await s.request('GET', `/dicomweb/studies?StudyInstanceUID=${inst.study}`, withCookie(rita, { accept: 'application/dicom+json' }));
    expect(seen.status).toBe(200);
    expect(seen.body).toHaveLength(1);
    const hidden = await s.request('GET', `/dicomweb/studies?StudyInstanceUID=${inst.study}`, withCookie(ben, { accept: 'application/dicom+json' }));
    expect(hidden.status === 204 || (hidden.status === 200 && hidden.body.length === 0)).toBe(true);
    expect((await s.request('GET', `/dicomweb/studies/${inst.study}/metadata`, withCookie(ben, { accept: 'application/dicom+json' }))).status).toBe(404);
    // The reader: admin endpoints refuse or hide.
    for (const [method, url] of [['GET', '/admin/users'], ['GET', '/admin/devices'], ['GET', '/admin/audit'], ['POST', '/admin/departments']] as const) {
      const r = await s.request(method, url, { ...unsafe(rita), ...(method === 'POST' ? { body: { name: 'x' } } : {}) });
      expect([403, 404], `${method} ${url}: ${r.status}`).toContain(r.status);
    }
    // A reader cannot delete; the department admin can, with cookie + CSRF.
    const ann = await loginBrowser('ann', USER_PASSWORD);
    expect([403, 404]).toContain((await s.request('DELETE', `/dicomweb/studies/${inst.study}`, unsafe(rita))).status);
    const del = await s.request('DELETE', `/dicomweb/studies/${inst.study}`, unsafe(ann));
    expect([200, 202, 204], del.text).toContain(del.status);
    const gone = await s.request('GET', `/dicomweb/studies?StudyInstanceUID=${inst.study}`, withCookie(ann, { accept: 'application/dicom+json' }));
    expect(gone.status === 204 || gone.body.length === 0).toBe(true);
  });
});

// The HTTPS door over a real socket: TLS, headers, tokens and every attack on them,
// bootstrap and the forced password change, brute force (per account, per address,
// across a restart), rate limiting, uniform errors and the log scan for passwords.

import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import tls from 'node:tls';
import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openDb, type Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from '../../src/deps.js';
import { expectErrorBody } from '../helpers/error-body.js';
import { ADMIN_PASSWORD as ADMIN_PW } from '../helpers/fixtures.js';
import { startTestServer, tempDir, testPki, type HttpResponse, type TestServer } from '../helpers/http.js';
import { attackerEcKey, claims, decodeToken, encodeJson, forge, serverSigningKey } from '../helpers/http-jwt.js';

/** Every password and passcode this file sends: none may ever appear in a log line. */
const SECRETS = new Set<string>([ADMIN_PW]);
const secret = (s: string) => (SECRETS.add(s), s);

let pki: Pki;
beforeAll(async () => {
  pki = await testPki();
});

function expect401(r: HttpResponse, code?: string): void {
  expectErrorBody(r, 401, code);
  expect(String(r.headers['www-authenticate'])).toMatch(/^Bearer realm="tresor"/);
}

describe.each(databasesUnderTest())('HTTPS door on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let dir: string;
  let s: TestServer;
  let adminToken: string;
  let adminId: number;

  beforeAll(async () => {
    t = await dbu.open();
    dir = await tempDir();
    s = await startTestServer({ db: t.db, pki, dataDir: dir, adminPassword: ADMIN_PW });
    adminToken = await s.login('admin', ADMIN_PW);
    adminId = Number((await t.db('users').where({ username: 'admin' }).first()).id);
    expect((await s.request('POST', '/admin/departments', { token: adminToken, body: { name: 'cardiology' } })).status).toBe(201);
    for (const [username, role] of [['alice', 'admin'], ['dave', 'reader']] as const) {
      const r = await s.request('POST', '/admin/users', {
        token: adminToken,
        body: { username, password: secret(`${role} long secret phrase`), roles: [{ department: 'cardiology', role }] },
      });
      expect(r.status).toBe(201);
    }
  });
  afterAll(async () => {
    await s?.close();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  describe('transport', () => {
    const handshake = (o: tls.ConnectionOptions) =>
      new Promise<{ protocol: string | null; cipher: string }>((resolve, reject) => {
        const u = new URL(s.url);
        const sock = tls.connect({ host: u.hostname, port: Number(u.port), ca: s.ca, servername: 'localhost', ...o }, () => {
          const r = { protocol: sock.getProtocol(), cipher: sock.getCipher().name };
          sock.end();
          resolve(r);
        });
        sock.on('error', reject);
      });

    it('negotiates TLS 1.3, or TLS 1.2 with ECDHE AEAD suites, against the generated CA', async () => {
      expect((await handshake({})).protocol).toBe('TLSv1.3');
      const r12 = await handshake({ maxVersion: 'TLSv1.2' });
      expect(r12.protocol).toBe('TLSv1.2');
      expect(r12.cipher).toMatch(/^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
    });

    it('refuses TLS 1.1 and 1.0, static-RSA and CBC suites, and plain HTTP', async () => {
      await expect(handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).rejects.toThrow();
      await expect(handshake({ maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384' })).rejects.toThrow();
      await expect(handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384' })).rejects.toThrow();
      const plain = new Promise((resolve, reject) => {
        const req = http.request(s.url.replace('https:', 'http:') + '/healthz', (res) => resolve(res.statusCode));
        req.on('error', reject);
        req.end();
      });
      await expect(plain).rejects.toThrow();
    });

    it('does not trust a server certificate from anyone but the generated CA', async () => {
      await expect(handshake({ ca: undefined })).rejects.toThrow(/self-signed|unable to verify|certificate/i);
    });
  });

  describe('headers and public routes', () => {
    it('GET /healthz is public and carries the security headers', async () => {
      const r = await s.request('GET', '/healthz');
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ status: 'ok' });
      expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['x-frame-options']).toBe('DENY');
      expect(r.headers['content-security-policy']).toContain("default-src 'none'");
      expect(r.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(r.headers['referrer-policy']).toBe('no-referrer');
      expect(r.headers['x-powered-by']).toBeUndefined();
      expect(r.headers.server).toBeUndefined();
    });

    it('CORS: only configured origins, no credentials; preflight needs no token', async () => {
      const d = await tempDir();
      const c = await startTestServer({ db: t.db, pki, dataDir: d, corsOrigins: ['https://viewer.example'] });
      try {
        const pre = await c.request('OPTIONS', '/admin/users', {
          headers: { origin: 'https://viewer.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
        });
        expect(pre.status).toBe(204);
        expect(pre.headers['access-control-allow-origin']).toBe('https://viewer.example');
        expect(pre.headers['access-control-allow-credentials']).toBeUndefined();
        const evil = await c.request('OPTIONS', '/admin/users', { headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
        expect(evil.headers['access-control-allow-origin']).toBeUndefined();
        // The actual request still needs its token.
        expect401(await c.request('GET', '/admin/users', { headers: { origin: 'https://viewer.example' } }));
        // Without configured origins there are no CORS headers at all.
        expect((await s.request('GET', '/healthz', { headers: { origin: 'https://viewer.example' } })).headers['access-control-allow-origin']).toBeUndefined();
      } finally {
        await c.close();
        await fs.rm(d, { recursive: true, force: true });
      }
    });

    it('token responses are not cacheable', async () => {
      const r = await s.request('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PW } });
      expect(r.status).toBe(200);
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 600, password_change_required: false });
    });
  });

  describe('tokens: every attack refused', () => {
    const headerFor = (kid: string) => ({ alg: 'ES256', typ: 'at+jwt', kid });
    const adminClaims = (o: Partial<Parameters<typeof claims>[0]> = {}) => claims({ userId: adminId, iss: TOKEN_ISSUER, aud: TOKEN_AUDIENCE, ...o });
    const get = (token: string) => s.request('GET', '/admin/users', { token });

    it('the baseline: a valid token works', async () => {
      expect((await get(adminToken)).status).toBe(200);
      const { kid, key } = await serverSigningKey(dir);
      expect((await get(forge(headerFor(kid), adminClaims(), { es256: key }))).status).toBe(200);
    });

    it('no token, a wrong scheme, a malformed header', async () => {
      expect401(await s.request('GET', '/admin/users'), 'missing-token');
      expect401(await s.request('GET', '/admin/users', { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PW}`).toString('base64')}` } }));
      expect401(await s.request('GET', '/admin/users', { headers: { authorization: 'Bearer' } }));
      expect401(await s.request('GET', '/admin/users', { headers: { authorization: `Bearer ${adminToken} extra` } }));
      expect401(await s.request('GET', '/admin/users', { headers: { authorization: `Token ${adminToken}` } }));
      // Not in the query string either (RFC 6750 §2.3 discourages it: URLs get logged).
      expect401(await s.request('GET', `/admin/users?access_token=${adminToken}`));
    });

    it('alg "none"', async () => {
      const { kid } = await serverSigningKey(dir);
      const r = await get(forge({ ...headerFor(kid), alg: 'none' }, adminClaims(), { none: true }));
      expect401(r, 'invalid-token');
      expect(r.headers['www-authenticate']).toContain('error="invalid_token"');
    });

    it('HS256 signed with the server’s public key (PEM, DER and JWK)', async () => {
      const { kid } = await serverSigningKey(dir);
      const pem = s.identity.tokens.publicKeyFor(kid)!;
      for (const k of [pem, createPublicKey(pem).export({ type: 'spki', format: 'der' }), JSON.stringify(createPublicKey(pem).export({ format: 'jwk' }))]) {
        expect401(await get(forge({ ...headerFor(kid), alg: 'HS256' }, adminClaims(), { hs256: k })), 'invalid-token');
      }
    });

    it('expired, not yet valid, issued too long ago', async () => {
      const { kid, key } = await serverSigningKey(dir);
      const now = Math.floor(Date.now() / 1000);
      expect401(await get(forge(headerFor(kid), adminClaims({ iat: now - 1200, exp: now - 600 }), { es256: key })), 'token-expired');
      expect401(await get(forge(headerFor(kid), adminClaims({ nbf: now + 600 }), { es256: key })), 'invalid-token');
      expect401(await get(forge(headerFor(kid), adminClaims({ iat: now - 7200, exp: now + 600 }), { es256: key })));
    });

    it('a tampered payload or signature, another issuer or audience, an unknown kid, an embedded key', async () => {
      const [h, p, sig] = adminToken.split('.');
      const payload = decodeToken(adminToken).payload;
      expect401(await get(`${h}.${encodeJson({ ...payload, gen: payload.gen + 1 })}.${sig}`), 'invalid-token');
      expect401(await get(`${h}.${encodeJson({ ...payload, exp: payload.exp + 3600 })}.${sig}`), 'invalid-token');
      expect401(await get(`${h}.${p}.${sig.slice(0, -6)}AAAAAA`), 'invalid-token');
      const { kid, key } = await serverSigningKey(dir);
      expect401(await get(forge(headerFor(kid), adminClaims({ iss: 'https://evil.test' }), { es256: key })));
      expect401(await get(forge(headerFor(kid), adminClaims({ aud: 'someone-else' }), { es256: key })));
      expect401(await get(forge({ ...headerFor(kid), typ: 'JWT' }, adminClaims(), { es256: key })));
      expect401(await get(forge({ ...headerFor('unknown') }, adminClaims(), { es256: key })));
      const evil = attackerEcKey();
      expect401(await get(forge({ ...headerFor(kid), jwk: evil.publicKey.export({ format: 'jwk' }) }, adminClaims(), { es256: evil.privateKey })));
      expect401(await get(forge({ ...headerFor(kid), jku: 'https://evil.test/jwks' }, adminClaims(), { es256: evil.privateKey })));
    });

    it('a disabled user’s token is refused at once; role changes act on the next request', async () => {
      const alice = await s.login('alice', 'admin long secret phrase');
      const dave = await s.login('dave', 'reader long secret phrase');
      expect((await get(alice)).status).toBe(200);
      // dave reads nothing administrative
      expectErrorBody(await get(dave), 403, 'not-an-administrator');
      // revoke alice's admin role: the same token is now refused the admin API
      expect((await s.request('DELETE', '/admin/users/alice/roles/cardiology/admin', { token: adminToken })).status).toBe(204);
      expectErrorBody(await get(alice), 403, 'not-an-administrator');
      expect((await s.request('POST', '/admin/users/alice/roles', { token: adminToken, body: { department: 'cardiology', role: 'admin' } })).status).toBe(200);
      expect((await get(alice)).status).toBe(200);
      // disable alice: refused on the very next request
      expect((await s.request('PATCH', '/admin/users/alice', { token: adminToken, body: { disabled: true } })).status).toBe(200);
      expect401(await get(alice), 'account-unusable');
      // and a fresh login fails like a wrong password
      expect401(await s.request('POST', '/auth/token', { body: { username: 'alice', password: 'admin long secret phrase' } }), 'bad-credentials');
      expect((await s.request('PATCH', '/admin/users/alice', { token: adminToken, body: { disabled: false } })).status).toBe(200);
      // the old token stays dead after re-enabling (its generation is gone)
      expect401(await get(alice));
      expect((await get(await s.login('alice', 'admin long secret phrase'))).status).toBe(200);
    });

    it('a deleted user’s token is refused', async () => {
      await s.request('POST', '/admin/users', { token: adminToken, body: { username: 'erin', password: secret('she is leaving soon'), roles: [{ department: 'cardiology', role: 'reader' }] } });
      const erin = await s.login('erin', 'she is leaving soon');
      expect((await s.request('DELETE', '/admin/users/erin', { token: adminToken })).status).toBe(204);
      expect401(await s.request('POST', '/auth/password', { token: erin, body: { currentPassword: 'she is leaving soon', newPassword: 'whatever else 123' } }));
    });

    it('audits logins and token refusals, without the password', async () => {
      const r = await s.request('GET', '/admin/audit?action=token.refused&limit=1000', { token: adminToken });
      expect(r.status).toBe(200);
      const reasons = new Set(r.body.events.map((e: any) => e.details.reason));
      for (const reason of ['invalid-token', 'token-expired', 'account-unusable', 'malformed-authorization']) expect(reasons).toContain(reason);
      const logins = await s.request('GET', '/admin/audit?action=login&limit=1000', { token: adminToken });
      expect(logins.body.events.some((e: any) => e.outcome === 'success' && e.principalName === 'alice' && e.source === '127.0.0.1')).toBe(true);
      expect(logins.body.events.some((e: any) => e.outcome === 'failure' && e.details.name === 'alice')).toBe(true);
      for (const pw of SECRETS) expect(r.text + logins.text).not.toContain(pw);
    });
  });

  describe('uniform errors', () => {
    it('unknown route, unknown field, wrong type, bad JSON, wrong media type, too large', async () => {
      // (Unknown non-API paths are the console's: they answer its page, test/http/console-static.test.ts.)
      expectErrorBody(await s.request('GET', '/admin/nope', { token: adminToken }), 404, 'not-found');
      expect401(await s.request('GET', '/admin/nope'));
      expectErrorBody(await s.request('POST', '/nope', { token: adminToken, body: {} }), 404, 'not-found');
      expectErrorBody(await s.request('POST', '/admin/departments', { token: adminToken, body: { name: 'x', color: 'red' } }), 400, 'invalid-request');
      expectErrorBody(await s.request('POST', '/admin/departments', { token: adminToken, body: { name: 42 } }), 400, 'invalid-request');
      expectErrorBody(await s.request('POST', '/auth/token', { rawBody: `{"username":"admin","password":"${secret('in-broken-json-9f8e')}"` }), 400, 'invalid-json');
      expectErrorBody(await s.request('POST', '/auth/token', { rawBody: 'username=admin', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415);
      expectErrorBody(await s.request('POST', '/auth/token', { rawBody: JSON.stringify({ username: 'admin', password: 'x'.repeat(2 * 1024 * 1024) }) }), 413, 'too-large');
      expectErrorBody(await s.request('POST', '/auth/token', { rawBody: '{"__proto__":{"admin":true},"username":"a","password":"b"}' }), 400);
      expectErrorBody(await s.request('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PW, extra: 1 } }), 400, 'invalid-request');
    });

    it('a broken database gives 503 on /readyz (not /healthz: liveness asks no dependency) and a bare 500 elsewhere, logged but not shown', async () => {
      const other = await dbu.open();
      const d = await tempDir();
      const broken = await startTestServer({ db: other.db, pki, dataDir: d, adminPassword: ADMIN_PW });
      try {
        const token = await broken.login('admin', ADMIN_PW);
        await other.close();
        expect((await broken.request('GET', '/healthz')).status).toBe(200);
        expectErrorBody(await broken.request('GET', '/readyz'), 503, 'unhealthy');
        // A destroyed pool is a fault of ours, not an outage of PostgreSQL (src/lib/transient.ts): 500.
        const r = await broken.request('GET', '/admin/users', { token });
        expectErrorBody(r, 500, 'internal-error');
        expect(r.body.error.message).toBe('internal error');
        expect(broken.logs.some((l) => l.includes('"level":50') && l.includes('request failed'))).toBe(true);
      } finally {
        await broken.close();
        await fs.rm(d, { recursive: true, force: true });
      }
    });

    it('a core error never leaks its internals (conflict from a unique constraint)', async () => {
      const r = await s.request('POST', '/admin/departments', { token: adminToken, body: { name: 'CARDIOLOGY' } });
      expectErrorBody(r, 409, 'department-exists');
      expect(r.text).not.toMatch(/duplicate key|constraint|23505/);
    });
  });

  describe('rate limiting on /auth/*', () => {
    it('answers 429 with a uniform body and Retry-After once an address exceeds the limit', async () => {
      const d = await tempDir();
      const limited = await startTestServer({ db: t.db, pki, dataDir: d, authRateLimit: { max: 3, timeWindowMs: 60_000 } });
      try {
        const codes: number[] = [];
        for (let i = 0; i < 5; i++) codes.push((await limited.request('POST', '/auth/token', { body: { username: 'nobody-rl', password: 'x' } })).status);
        expect(codes).toEqual([401, 401, 401, 429, 429]);
        const r = await limited.request('POST', '/auth/password', { body: { currentPassword: 'a', newPassword: 'b' } });
        expectErrorBody(r, 429, 'rate-limited');
        expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
        // Other routes are not limited.
        expect((await limited.request('GET', '/healthz')).status).toBe(200);
      } finally {
        await limited.close();
        await fs.rm(d, { recursive: true, force: true });
      }
    });
  });

  describe('logs', () => {
    it('never contain a password, a passcode or a token', async () => {
      // A password change, an admin password reset and a passcode, so every path has run.
      await s.request('POST', '/admin/users', { token: adminToken, body: { username: 'frank', password: secret('his first pass 1'), roles: [{ department: 'cardiology', role: 'reader' }] } });
      await s.request('PATCH', '/admin/users/frank', { token: adminToken, body: { password: secret('reset by the admin 2') } });
      const frank = await s.login('frank', 'reset by the admin 2');
      const changed = await s.request('POST', '/auth/password', { token: frank, body: { currentPassword: 'reset by the admin 2', newPassword: secret('he chose this one 3') } });
      expect(changed.status).toBe(200);
      await s.request('POST', '/admin/devices', { token: adminToken, body: { aeTitle: 'CT9', roles: [{ department: 'cardiology', role: 'writer' }] } });
      expect((await s.request('PUT', '/admin/devices/CT9/passcode', { token: adminToken, body: { passcode: secret('scanner passcode 44') } })).status).toBe(204);
      const logs = s.logs.join('\n');
      expect(s.logs.length).toBeGreaterThan(50);
      for (const pw of SECRETS) expect(logs, `a log line contains "${pw}"`).not.toContain(pw);
      expect(logs).not.toContain(adminToken);
      expect(logs).not.toContain(adminToken.split('.')[2]);
      expect(logs).not.toMatch(/PRIVATE KEY/);
      // the request log has paths without query strings
      expect(logs).not.toContain('access_token=');
    });
  });
});

describe.each(databasesUnderTest())('bootstrap over HTTPS on $name', (dbu) => {
  it('the generated password must be changed before the token does anything else', async () => {
    const t = await dbu.open();
    const dir = await tempDir();
    const s = await startTestServer({ db: t.db, pki, dataDir: dir });
    try {
      const boot = await s.identity.bootstrapAdmin({});
      expect(boot.created).toBe(true);
      const file = path.join(dir, 'initial-admin-password');
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      const generated = secret((await fs.readFile(file, 'utf8')).trim());
      const r = await s.request('POST', '/auth/token', { body: { username: 'admin', password: generated } });
      expect(r.status).toBe(200);
      expect(r.body.password_change_required).toBe(true);
      const token = r.body.access_token;
      expectErrorBody(await s.request('GET', '/admin/users', { token }), 403, 'password-change-required');
      expectErrorBody(await s.request('POST', '/admin/departments', { token, body: { name: 'x' } }), 403, 'password-change-required');
      expect401(await s.request('POST', '/auth/password', { token, body: { currentPassword: 'wrong password!', newPassword: 'brand new password 1' } }), 'bad-credentials');
      expectErrorBody(await s.request('POST', '/auth/password', { token, body: { currentPassword: generated, newPassword: 'short' } }), 400, 'weak-password');
      expectErrorBody(await s.request('POST', '/auth/password', { token, body: { currentPassword: generated, newPassword: generated } }), 400, 'weak-password');
      const changed = await s.request('POST', '/auth/password', { token, body: { currentPassword: generated, newPassword: secret('brand new password 1') } });
      expect(changed.status).toBe(200);
      expect(changed.body.password_change_required).toBe(false);
      expect401(await s.request('GET', '/admin/users', { token }));
      expect((await s.request('GET', '/admin/users', { token: changed.body.access_token })).status).toBe(200);
      await expect(fs.stat(file)).rejects.toThrow();
      expect401(await s.request('POST', '/auth/token', { body: { username: 'admin', password: generated } }));
      // The log names the file at most, never the password.
      expect(s.logs.join('\n')).not.toContain(generated);
    } finally {
      await s.close();
      await t.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

/** The URL of a knex pg connection (given as a string, or parsed into an object by knex). */
function connectionUrl(c: unknown): string {
  if (typeof c === 'string') return c;
  const o = c as { user?: string; password?: string; host?: string; port?: number; database?: string; connectionString?: string };
  if (o.connectionString) return o.connectionString;
  const auth = o.password ? `${encodeURIComponent(o.user ?? '')}:${encodeURIComponent(o.password)}` : encodeURIComponent(o.user ?? '');
  return `postgres://${auth}@${o.host ?? '127.0.0.1'}:${o.port ?? 5432}/${o.database}`;
}

describe.each(databasesUnderTest())('brute force on $name', (dbu) => {
  const tryLogin = (s: TestServer, username: string, password: string) => s.request('POST', '/auth/token', { body: { username, password } });

  it('locks one account after 5 failures, whatever the password, and still after a restart', async () => {
    const first = await dbu.open();
    const dir = await tempDir();
    // The same database reopened by a new server, as after a process restart: a new
    // connection pool (PGlite: the same files reopened; PostgreSQL: a second client).
    let pgUrl: string | undefined;
    let embedded: string | undefined;
    let db: Db = first.db;
    if (dbu.name === 'pglite') {
      await first.close();
      embedded = path.join(dir, 'db');
      db = await openDb({ embeddedDir: embedded });
      await migrate(db);
    } else {
      pgUrl = connectionUrl((first.db.client as { config: { connection: unknown } }).config.connection);
    }
    let s = await startTestServer({ db, pki, dataDir: dir, adminPassword: ADMIN_PW });
    try {
      await s.request('POST', '/admin/departments', { token: await s.login('admin', ADMIN_PW), body: { name: 'ward' } });
      await s.request('POST', '/admin/users', {
        token: await s.login('admin', ADMIN_PW),
        body: { username: 'grace', password: secret('grace real password'), roles: [{ department: 'ward', role: 'reader' }] },
      });
      for (let i = 0; i < 5; i++) expect401(await tryLogin(s, 'grace', `guess number ${i}`), 'bad-credentials');
      const locked = await tryLogin(s, 'grace', 'grace real password');
      expect401(locked, 'locked');
      expect(Number(locked.headers['retry-after'])).toBeGreaterThan(200);
      // Another account from the same address is not affected (5 < the address limit).
      expect((await tryLogin(s, 'admin', ADMIN_PW)).status).toBe(200);

      // Restart: close the server and its pool, open the database again, start anew.
      await s.close();
      if (embedded) {
        await db.destroy();
        db = await openDb({ embeddedDir: embedded });
      } else {
        db = await openDb({ url: pgUrl });
      }
      s = await startTestServer({ db, pki, dataDir: dir });
      expect401(await tryLogin(s, 'grace', 'grace real password'), 'locked');
      const audit = await s.request('GET', '/admin/audit?action=login&outcome=denied', { token: await s.login('admin', ADMIN_PW) });
      expect(audit.body.events.filter((e: any) => e.details.name === 'grace' && e.details.reason === 'locked')).toHaveLength(2);
    } finally {
      await s.close();
      await db.destroy();
      if (!embedded) await first.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('locks an address after 20 failures spread over many accounts', async () => {
    const t = await dbu.open();
    const dir = await tempDir();
    const s = await startTestServer({ db: t.db, pki, dataDir: dir, adminPassword: ADMIN_PW });
    try {
      // 4 tries each at 5 names: no account reaches its limit, the address does.
      for (let i = 0; i < 20; i++) expect401(await tryLogin(s, `victim${i % 5}`, `pw ${i}`), 'bad-credentials');
      expect401(await tryLogin(s, 'admin', ADMIN_PW), 'locked');
      const rows = await t.db('lockouts').select('key', 'lock_count').orderBy('key');
      expect(rows.find((r: any) => r.key === 'addr:127.0.0.1')).toMatchObject({ lock_count: 1 });
      expect(rows.filter((r: any) => r.key.startsWith('user:victim') && r.lock_count > 0)).toHaveLength(0);
      // The admin, from another address, still gets in: the lock is on the address.
      await expect(s.identity.login({ username: 'admin', password: ADMIN_PW, source: '10.0.0.99' })).resolves.toMatchObject({ tokenType: 'Bearer' });
    } finally {
      await s.close();
      await t.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

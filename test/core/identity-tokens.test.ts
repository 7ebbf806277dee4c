// core/identity/tokens.ts (over pki/token-key-store.ts): the verifier both doors use.
// Every forged or stale token is refused; keys live in <dataDir>/keys with mode 0600 and rotate without breaking
// tokens that are still valid.

import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTresorError } from '../../src/core/errors.js';
import { openTokenService, TOKEN_TYPE, type TokenService } from '../../src/core/identity/tokens.js';
import type { TokenKeyRing, TokenKeyStore } from '../../src/core/ports/token-key-store.js';
import { fsTokenKeyStore, loadTokenKeys } from '../../src/pki/token-key-store.js';
import { tempDir } from '../helpers/http.js';
import { attackerEcKey, attackerRsaKey, claims, decodeToken, encodeJson, forge, serverSigningKey } from '../helpers/http-jwt.js';

const settings = { issuer: 'https://tresor.test', audience: 'tresor-api', ttlSeconds: 300 };

async function refusal(tokens: TokenService, token: string): Promise<string> {
  try {
    await tokens.verify(token);
    return 'accepted';
  } catch (e) {
    return isTresorError(e) ? `${e.kind}:${e.reason}` : `other:${String(e)}`;
  }
}

describe('access tokens', () => {
  let dir: string;
  let tokens: TokenService;
  let kid: string;
  let key: Awaited<ReturnType<typeof serverSigningKey>>['key'];
  const header = () => ({ alg: 'ES256', typ: TOKEN_TYPE, kid });
  const good = (o: Partial<Parameters<typeof claims>[0]> = {}) => claims({ userId: 1, iss: settings.issuer, aud: settings.audience, ...o });

  beforeAll(async () => {
    dir = await tempDir('tresor-keys-');
    tokens = await openTokenService({ keys: fsTokenKeyStore(path.join(dir, 'keys')), settings });
    ({ kid, key } = await serverSigningKey(dir));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('issues ES256 at+jwt tokens with kid, issuer, audience, expiry and a unique id', async () => {
    const { token, expiresIn } = await tokens.issue({ sub: 'user:1', gen: 3 });
    const { header: h, payload } = decodeToken(token);
    expect(h).toEqual({ alg: 'ES256', typ: 'at+jwt', kid });
    expect(payload).toMatchObject({ sub: 'user:1', gen: 3, iss: settings.issuer, aud: settings.audience });
    expect(payload.exp - payload.iat).toBe(300);
    expect(expiresIn).toBe(300);
    expect((await tokens.issue({ sub: 'user:1', gen: 3 })).token).not.toBe(token);
    expect(await tokens.verify(token)).toMatchObject({ sub: 'user:1', gen: 3 });
  });

  it('keeps the signing key in <dataDir>/keys, mode 0600, directory 0700', async () => {
    const st = await fs.stat(path.join(dir, 'keys', `${kid}.key`));
    expect(st.mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(dir, 'keys'))).mode & 0o777).toBe(0o700);
  });

  it('accepts a token forged with the real key and correct claims (the baseline for the attacks below)', async () => {
    expect(await refusal(tokens, forge(header(), good(), { es256: key }))).toBe('accepted');
  });

  it('refuses alg "none"', async () => {
    expect(await refusal(tokens, forge({ ...header(), alg: 'none' }, good(), { none: true }))).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, forge({ alg: 'none', typ: TOKEN_TYPE }, good(), { none: true }))).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, forge({ ...header(), alg: 'NONE' }, good(), { none: true }))).toBe('unauthenticated:invalid-token');
  });

  it('refuses HS256 signed with the public key (algorithm confusion), in every encoding of it', async () => {
    const pem = tokens.publicKeyFor(kid)!;
    const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
    const jwk = JSON.stringify(createPublicKey(pem).export({ format: 'jwk' }));
    for (const secret of [pem, pem.trim(), `\n${pem}`, der, jwk]) {
      expect(await refusal(tokens, forge({ ...header(), alg: 'HS256' }, good(), { hs256: secret }))).toBe('unauthenticated:invalid-token');
    }
  });

  it('refuses RS256 and ES256 tokens signed with someone else’s key', async () => {
    const rsa = attackerRsaKey();
    const ec = attackerEcKey();
    expect(await refusal(tokens, forge({ ...header(), alg: 'RS256' }, good(), { rs256: rsa.privateKey }))).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, forge(header(), good(), { es256: ec.privateKey }))).toBe('unauthenticated:invalid-token');
  });

  it('ignores jwk / jku / x5u / x5c headers: the key is only ever ours, and nothing is fetched', async () => {
    let fetched = 0;
    const server = http.createServer((_req, res) => {
      fetched++;
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    try {
      const ec = attackerEcKey();
      const jwk = ec.publicKey.export({ format: 'jwk' });
      const forged = forge({ ...header(), jwk, jku: url, x5u: url, x5c: ['MIIB'] }, good(), { es256: ec.privateKey });
      expect(await refusal(tokens, forged)).toBe('unauthenticated:invalid-token');
      // Without our kid, with only an embedded key:
      expect(await refusal(tokens, forge({ alg: 'ES256', typ: TOKEN_TYPE, jwk }, good(), { es256: ec.privateKey }))).toBe('unauthenticated:invalid-token');
      expect(fetched).toBe(0);
    } finally {
      server.close();
    }
  });

  it('refuses expired tokens, future nbf, tokens older than the ttl, unknown kid, wrong type, issuer or audience', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await refusal(tokens, forge(header(), good({ iat: now - 400, exp: now - 60 }), { es256: key }))).toBe('unauthenticated:token-expired');
    expect(await refusal(tokens, forge(header(), good({ nbf: now + 120 }), { es256: key }))).toBe('unauthenticated:invalid-token');
    // exp far ahead but issued long ago: maxAge (ttl) still ends it.
    expect(await refusal(tokens, forge(header(), good({ iat: now - 3600, exp: now + 3600 }), { es256: key }))).not.toBe('accepted');
    expect(await refusal(tokens, forge({ ...header(), kid: 'nope' }, good(), { es256: key }))).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, forge({ alg: 'ES256', typ: TOKEN_TYPE }, good(), { es256: key }))).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, forge({ ...header(), typ: 'JWT' }, good(), { es256: key }))).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, forge(header(), good({ iss: 'https://evil.test' }), { es256: key }))).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, forge(header(), good({ aud: 'another-api' }), { es256: key }))).toBe('unauthenticated:invalid-token');
  });

  it('refuses missing claims and claims of the wrong type', async () => {
    const c = good();
    for (const k of ['sub', 'gen', 'exp', 'iat', 'jti']) {
      const partial = { ...c };
      delete partial[k];
      expect(await refusal(tokens, forge(header(), partial, { es256: key }))).toBe('unauthenticated:invalid-token');
    }
    expect(await refusal(tokens, forge(header(), { ...c, sub: 'device:1' }, { es256: key }))).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, forge(header(), { ...c, gen: '0' }, { es256: key }))).toBe('unauthenticated:invalid-token');
  });

  it('refuses a tampered payload or header, and junk', async () => {
    const { token } = await tokens.issue({ sub: 'user:1', gen: 0 });
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    const elevated = encodeJson({ ...payload, sub: 'user:2' });
    expect(await refusal(tokens, `${h}.${elevated}.${s}`)).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, `${encodeJson({ alg: 'ES256', typ: TOKEN_TYPE, kid, x: 1 })}.${p}.${s}`)).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, `${h}.${p}.${s.slice(0, -4)}AAAA`)).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, `${h}.${p}.`)).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, `${h}.${p}`)).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, 'not a token')).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, `${h} .${p}.${s}`)).toBe('unauthenticated:invalid-token');
    expect(await refusal(tokens, 'a'.repeat(10_000))).toBe('unauthenticated:invalid-token');
  });

  it('rotates: new tokens use the new key, old tokens keep working until the old key is retired', async () => {
    const d = await tempDir('tresor-rotate-');
    let clock = new Date('2030-01-01T00:00:00Z');
    const now = () => clock;
    const t = await openTokenService({ keys: fsTokenKeyStore(path.join(d, 'keys')), settings, now });
    const before = await t.issue({ sub: 'user:5', gen: 0 });
    clock = new Date(clock.getTime() + 1000);
    await t.rotate();
    const after = await t.issue({ sub: 'user:5', gen: 0 });
    expect(decodeToken(after.token).header.kid).not.toBe(decodeToken(before.token).header.kid);
    // Verification uses the real clock, so check the ring rather than expiry here.
    expect(t.publicKeyFor(decodeToken(before.token).header.kid)).toBeDefined();
    expect((await fs.readdir(path.join(d, 'keys'))).filter((f) => f.endsWith('.key'))).toHaveLength(2);
    // Once every token of the old key has expired (ttl + tolerance + margin), the key goes.
    clock = new Date(clock.getTime() + (settings.ttlSeconds + 120) * 1000);
    await t.reload();
    expect(t.publicKeyFor(decodeToken(before.token).header.kid)).toBeUndefined();
    expect(t.publicKeyFor(decodeToken(after.token).header.kid)).toBeDefined();
    expect((await fs.readdir(path.join(d, 'keys'))).filter((f) => f.endsWith('.key'))).toHaveLength(1);
    await fs.rm(d, { recursive: true, force: true });
  });

  it('picks up a key rotated by another process (CLI) without a restart', async () => {
    const d = await tempDir('tresor-rotate3-');
    let clock = new Date();
    const server = await openTokenService({ keys: fsTokenKeyStore(path.join(d, 'keys')), settings, now: () => clock });
    const oldKid = decodeToken((await server.issue({ sub: 'user:7', gen: 0 })).token).header.kid;
    await new Promise((r) => setTimeout(r, 1100));
    const cli = await openTokenService({ keys: fsTokenKeyStore(path.join(d, 'keys')), settings });
    await cli.rotate();
    const fromCli = await cli.issue({ sub: 'user:7', gen: 0 });
    const newKid = decodeToken(fromCli.token).header.kid;
    expect(newKid).not.toBe(oldKid);
    // An unknown kid makes the server re-read the directory (throttled to every 10 s).
    clock = new Date(clock.getTime() + 11_000);
    expect(await server.verify(fromCli.token)).toMatchObject({ sub: 'user:7' });
    // And after a minute it signs with the newest key too.
    clock = new Date(clock.getTime() + 61_000);
    expect(decodeToken((await server.issue({ sub: 'user:7', gen: 0 })).token).header.kid).toBe(newKid);
    // Unknown kids cannot make it read the disk on every request.
    expect(await server.keyFor('20300101T000000Z-deadbeef')).toBeUndefined();
    await fs.rm(d, { recursive: true, force: true });
  });

  it('verifies a token signed before a rotation with the real clock', async () => {
    const d = await tempDir('tresor-rotate2-');
    const t = await openTokenService({ keys: fsTokenKeyStore(path.join(d, 'keys')), settings });
    const before = await t.issue({ sub: 'user:6', gen: 0 });
    await new Promise((r) => setTimeout(r, 1100)); // kids have second resolution
    await t.rotate();
    expect(await t.verify(before.token)).toMatchObject({ sub: 'user:6' });
    expect(decodeToken((await t.issue({ sub: 'user:6', gen: 0 })).token).header.kid).not.toBe(decodeToken(before.token).header.kid);
    // A second server process reading the same directory verifies both.
    const ring = await loadTokenKeys(path.join(d, 'keys'), { retainMs: 600_000 });
    expect(ring.publicKeys.size).toBe(2);
    await fs.rm(d, { recursive: true, force: true });
  });

  it('works over any TokenKeyStore: the core reads no key directory itself', async () => {
    const keys = new Map<string, string>();
    let n = 0;
    const store: TokenKeyStore = {
      async create() {
        const kid = `k${++n}`;
        keys.set(kid, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
        return kid;
      },
      async load() {
        if (keys.size === 0) await this.create(new Date());
        const publicKeys = new Map([...keys].map(([k, pem]) => [k, createPublicKey(pem).export({ type: 'spki', format: 'pem' }) as string]));
        const [kid, privateKeyPem] = [...keys].at(-1)!;
        return { signing: { kid, privateKeyPem }, publicKeys } satisfies TokenKeyRing;
      },
    };
    const t = await openTokenService({ keys: store, settings });
    const before = await t.issue({ sub: 'user:8', gen: 0 });
    expect(decodeToken(before.token).header.kid).toBe('k1');
    await t.rotate();
    expect(decodeToken((await t.issue({ sub: 'user:8', gen: 0 })).token).header.kid).toBe('k2');
    expect(await t.verify(before.token)).toMatchObject({ sub: 'user:8' });
  });
});

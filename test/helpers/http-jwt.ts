// Hand-made JWTs for attack tests: any header, any payload, any signature, built with
// node:crypto only (no JWT library that might refuse to make a bad token).

import { createHmac, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export const b64url = (v: string | Buffer): string => Buffer.from(v).toString('base64url');
export const encodeJson = (o: unknown): string => b64url(JSON.stringify(o));

export function decodeToken(token: string): { header: any; payload: any; signature: string } {
  const [h, p, s] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString()), payload: JSON.parse(Buffer.from(p, 'base64url').toString()), signature: s };
}

/** ES256 (JOSE r||s, RFC 7518 §3.4) or RS256 with the given private key; HS256 with a secret. */
export function forge(header: Record<string, unknown>, payload: Record<string, unknown>, key: { es256?: KeyObject; rs256?: KeyObject; hs256?: string | Buffer; none?: true }): string {
  const input = `${encodeJson(header)}.${encodeJson(payload)}`;
  let sig = '';
  if (key.es256) sig = b64url(sign('sha256', Buffer.from(input), { key: key.es256, dsaEncoding: 'ieee-p1363' }));
  else if (key.rs256) sig = b64url(sign('sha256', Buffer.from(input), key.rs256));
  else if (key.hs256 !== undefined) sig = b64url(createHmac('sha256', key.hs256).update(input).digest());
  return `${input}.${sig}`;
}

/** The server's current signing key, read from <dataDir>/keys (what an insider with the disk has). */
export async function serverSigningKey(dataDir: string): Promise<{ kid: string; key: KeyObject }> {
  const dir = path.join(dataDir, 'keys');
  // Token keys only: <data>/keys also holds audit.key (the audit MAC key).
  const files = (await fs.readdir(dir)).filter((f) => /^\d{8}T\d{6}Z-[0-9a-f]{8}\.key$/.test(f)).sort();
  const file = files[files.length - 1];
  return { kid: file.replace(/\.key$/, ''), key: createPrivateKey(await fs.readFile(path.join(dir, file), 'utf8')) };
}

export const attackerEcKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
export const attackerRsaKey = () => generateKeyPairSync('rsa', { modulusLength: 2048 });

/** Claims like the server's, for `sub` = user id. */
export function claims(o: { userId: number; gen?: number; iss: string; aud: string; iat?: number; exp?: number; nbf?: number }): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const c: Record<string, unknown> = {
    sub: `user:${o.userId}`,
    gen: o.gen ?? 0,
    jti: `t-${Math.random().toString(36).slice(2)}`,
    iss: o.iss,
    aud: o.aud,
    iat: o.iat ?? now,
    exp: o.exp ?? now + 300,
  };
  if (o.nbf !== undefined) c.nbf = o.nbf;
  return c;
}

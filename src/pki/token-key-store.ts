// The token signing keys on disk, behind core's TokenKeyStore port
// (core/ports/token-key-store.ts): one ES256 (P-256, RFC 7518 §3.4) PKCS#8 file per key
// in <dataDir>/keys/, named by its kid, mode 0600 in a 0700 directory. The kid starts
// with its creation time, so sorting names sorts keys by age.

import { writeFileAtomic } from '../lib/fs-atomic.js';
import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { TokenKeyRing, TokenKeyStore } from '../core/ports/token-key-store.js';

const KEY_FILE_RE = /^(\d{8}T\d{6}Z-[0-9a-f]{8})\.key$/;

/** The key store of the directory `dir`. */
export function fsTokenKeyStore(dir: string): TokenKeyStore {
  return {
    load: (opts) => loadTokenKeys(dir, opts),
    create: (now) => createTokenKey(dir, now),
  };
}

export const kidCreatedAt = (kid: string): number => {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(kid);
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : 0;
};

export function newKid(now: Date): string {
  const iso = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  return `${iso}-${randomBytes(4).toString('hex')}`;
}

export function generateEcKey(): Promise<string> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'ec',
      { namedCurve: 'prime256v1', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } },
      (err, _pub, priv) => (err ? reject(err) : resolve(priv)),
    );
  });
}

async function ensureKeyDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** Writes a fresh ES256 key into `dir` and returns its kid. */
async function createTokenKey(dir: string, now: Date = new Date()): Promise<string> {
  await ensureKeyDir(dir);
  const kid = newKid(now);
  await writeFileAtomic(path.join(dir, `${kid}.key`), await generateEcKey(), 0o600);
  return kid;
}

/**
 * Loads every key in `dir` (creating the first one when there is none) and deletes keys
 * that were replaced more than `retainMs` ago: their tokens have all expired.
 */
export async function loadTokenKeys(dir: string, opts: { retainMs: number; now?: Date }): Promise<TokenKeyRing> {
  const now = opts.now ?? new Date();
  await ensureKeyDir(dir);
  let kids = (await readdir(dir)).map((f) => KEY_FILE_RE.exec(f)?.[1]).filter((k): k is string => !!k).sort();
  if (kids.length === 0) kids = [await createTokenKey(dir, now)];
  const keep: string[] = [];
  for (let i = 0; i < kids.length; i++) {
    const replacedAt = i + 1 < kids.length ? kidCreatedAt(kids[i + 1]) : Infinity;
    if (now.getTime() - replacedAt > opts.retainMs) await rm(path.join(dir, `${kids[i]}.key`), { force: true });
    else keep.push(kids[i]);
  }
  const publicKeys = new Map<string, string>();
  let signing: TokenKeyRing['signing'] | undefined;
  for (const kid of keep) {
    const privateKeyPem = await readFile(path.join(dir, `${kid}.key`), 'utf8');
    const key = createPrivateKey(privateKeyPem);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') continue;
    publicKeys.set(kid, createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string);
    signing = { kid, privateKeyPem };
  }
  if (!signing) throw new Error(`no usable ES256 key in ${dir}`);
  return { signing, publicKeys };
}

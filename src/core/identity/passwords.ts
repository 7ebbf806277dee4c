// Password and passcode hashing for users and devices.
// Node's scrypt (RFC 7914): memory-hard, in the standard library, off the event loop.
// Stored form (versioned, PHC-like, so parameters can be raised later without a migration):
//   $scrypt$v=1$ln=15,r=8,p=1$<salt base64>$<hash base64>
// N = 2^15, r = 8 needs 32 MiB per hash (OWASP Password Storage Cheat Sheet, scrypt
// minimum N=2^17,r=8,p=1 is for server-side hashing with spare memory; 2^15 keeps a
// login near 100 ms on a small box while every guess still costs 32 MiB).

import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { invalid } from '../errors.js';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ ln: 15, r: 8, p: 1 });
const PASSWORD_MIN_LENGTH = 12;
/** Bounds the work a login request can cause and matches the JSON schemas. */
export const PASSWORD_MAX_LENGTH = 256;

const VERSION = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
// Bounds accepted when reading a stored hash, so a corrupted row cannot make one
// verification allocate gigabytes.
const MAX_LN = 20;
const MAX_R = 32;
const MAX_P = 16;
const HASH_RE = /^\$scrypt\$v=(\d+)\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

function scrypt(password: string, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.ln;
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r * params.p + 16 * 1024 * 1024 };
  return new Promise((resolve, reject) => {
    // NFC: the same password typed on two keyboards yields the same bytes.
    scryptCb(password.normalize('NFC'), salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes with a fresh random salt. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, KEY_BYTES, params);
  return `$scrypt$v=${VERSION}$ln=${params.ln},r=${params.r},p=${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface Parsed {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

function parse(encoded: string): Parsed | null {
  const m = HASH_RE.exec(encoded);
  if (!m) return null;
  const [, v, ln, r, p, salt, key] = m;
  const params = { ln: Number(ln), r: Number(r), p: Number(p) };
  if (Number(v) !== VERSION) return null;
  if (params.ln < 1 || params.ln > MAX_LN || params.r < 1 || params.r > MAX_R || params.p < 1 || params.p > MAX_P) return null;
  const k = Buffer.from(key, 'base64');
  if (k.length < 16) return null;
  return { params, salt: Buffer.from(salt, 'base64'), key: k };
}

/** Constant-time check of `password` against a stored hash; false for any unreadable hash. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (typeof password !== 'string' || password.length > PASSWORD_MAX_LENGTH) return false;
  const parsed = parse(encoded);
  if (!parsed) {
    await burnPasswordCheck(password); // same time as a real check
    return false;
  }
  const key = await scrypt(password, parsed.salt, parsed.key.length, parsed.params);
  return timingSafeEqual(key, parsed.key);
}

/**
 * Spends the time of one real verification. Used when the account does not exist,
 * so response time does not tell which user names are real.
 */
export async function burnPasswordCheck(password: string): Promise<void> {
  await scrypt(typeof password === 'string' ? password.slice(0, PASSWORD_MAX_LENGTH) : '', DUMMY_SALT, KEY_BYTES, DEFAULT_SCRYPT);
}
const DUMMY_SALT = randomBytes(SALT_BYTES);

/** True when the stored hash uses weaker parameters than today's default (rehash on next login). */
export function needsRehash(encoded: string): boolean {
  const parsed = parse(encoded);
  if (!parsed) return true;
  const d = DEFAULT_SCRYPT;
  return parsed.params.ln < d.ln || parsed.params.r < d.r || parsed.params.p < d.p;
}

/** Recognises the stored format without checking anything else (for tests and migrations). */
export const isPasswordHash = (encoded: string): boolean => parse(encoded) !== null;

/**
 * Password rules (NIST SP 800-63B §5.1.1.2: length over composition rules): at least
 * 12 characters, at most 256, not containing the account name, not one repeated character.
 * Throws `invalid('weak-password')` with a message that never quotes the password.
 */
export function checkPasswordRules(password: string, ctx: { accountName?: string; what?: string } = {}): void {
  const what = ctx.what ?? 'password';
  if (typeof password !== 'string') throw invalid('weak-password', `the ${what} must be a string`);
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) throw invalid('weak-password', `the ${what} must be at least ${PASSWORD_MIN_LENGTH} characters`);
  if (password.length > PASSWORD_MAX_LENGTH) throw invalid('weak-password', `the ${what} must be at most ${PASSWORD_MAX_LENGTH} characters`);
  if (/^(.)\1*$/su.test(password)) throw invalid('weak-password', `the ${what} must not be one repeated character`);
  const name = ctx.accountName?.trim().toLowerCase();
  if (name && name.length >= 3 && password.toLowerCase().includes(name)) {
    throw invalid('weak-password', `the ${what} must not contain the account name`);
  }
}

/** A random password for the bootstrap admin: 24 characters of base64url (144 bits). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

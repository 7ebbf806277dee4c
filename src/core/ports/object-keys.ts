// Object keys are generated here and nowhere else (ARCHITECTURE.md rule 6): never
// built from request input. The key shape is part of the BlobStore port: the core
// makes keys, the stores in storage/ check them. Both stores refuse any key that does
// not match the exact shape below, so a bug elsewhere cannot turn a key into `../` or an
// absolute path (defence in depth; the fs store joins keys onto a directory).

import { randomBytes, randomUUID } from 'node:crypto';
import { invalid } from '../errors.js';

// objects/<h0h1>/<h2h3>/<32 hex of a UUID v4>: the two fan-out levels are the first
// four hex digits of the UUID itself, so each directory holds ~1/65536 of the objects.
const KEY_RE = /^objects\/([0-9a-f]{2})\/([0-9a-f]{2})\/\1\2[0-9a-f]{8}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/;

/**
 * Consecutive keys share their fan-out directories, this many at a time (issue 13). On the
 * filesystem store a new directory costs a failed rename, a mkdir and one more directory
 * flush than an existing one; with a random prefix per object, nearly every object of an
 * archive below ~65,000 objects paid that. The prefix is still random (16 bits, drawn
 * afresh for every run of keys), so directories fill evenly; the other 106 random bits of
 * each key are its own, so keys stay unguessable and never repeat.
 */
export const KEYS_PER_DIRECTORY = 256;
let prefix = '';
let left = 0;

// Prefixes for list(): only the characters keys are made of, so no `.` and no `\`.
const PREFIX_RE = /^[a-z0-9][a-z0-9/]{0,63}$|^$/;

export function newObjectKey(): string {
  if (left === 0) {
    prefix = randomBytes(2).toString('hex');
    left = KEYS_PER_DIRECTORY;
  }
  left--;
  // The UUID's first four hex digits are random bits (its version and variant come later).
  const hex = prefix + randomUUID().replace(/-/g, '').slice(4);
  return `objects/${hex.slice(0, 2)}/${hex.slice(2, 4)}/${hex}`;
}

export function isValidObjectKey(key: unknown): key is string {
  return typeof key === 'string' && KEY_RE.test(key);
}

export function isValidKeyPrefix(prefix: unknown): prefix is string {
  return typeof prefix === 'string' && PREFIX_RE.test(prefix) && !prefix.includes('//');
}

export function assertValidObjectKey(key: unknown): asserts key is string {
  if (!isValidObjectKey(key)) throw invalid('invalid-object-key', 'invalid object key');
}

export function assertValidKeyPrefix(prefix: unknown): asserts prefix is string {
  if (!isValidKeyPrefix(prefix)) throw invalid('invalid-object-key-prefix', 'invalid object key prefix');
}

// Object keys are generated here and nowhere else (ARCHITECTURE.md rule 6): never
// built from request input. The key shape is part of the BlobStore port: the core
// makes keys, the stores in storage/ check them. Both stores refuse any key that does
// not match the exact shape below, so a bug elsewhere cannot turn a key into `../` or an
// absolute path (defence in depth; the fs store joins keys onto a directory).

import { randomUUID } from 'node:crypto';
import { invalid } from '../errors.js';

// objects/<h0h1>/<h2h3>/<32 hex of a UUID v4>: the two fan-out levels are the first
// four hex digits of the UUID itself, so each directory holds ~1/65536 of the objects.
const KEY_RE = /^objects\/([0-9a-f]{2})\/([0-9a-f]{2})\/\1\2[0-9a-f]{8}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/;

// Prefixes for list(): only the characters keys are made of, so no `.` and no `\`.
const PREFIX_RE = /^[a-z0-9][a-z0-9/]{0,63}$|^$/;

export function newObjectKey(): string {
  const hex = randomUUID().replace(/-/g, '');
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

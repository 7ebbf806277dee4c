// Private keys kept in the database are sealed with AES-256-GCM (NIST SP 800-38D): a
// fresh random 96-bit nonce per encryption, the 128-bit tag checked on opening, and the
// secret's purpose and id as associated data, so a sealed CA key cannot be moved into the
// row of a token key (or another id) and still open.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { invalid } from '../core/errors.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

const aad = (purpose: string, id: string): Buffer => Buffer.from(`tresor-sealed-v1\0${purpose}\0${id}`);

export function seal(key: Buffer, purpose: string, id: string, plaintext: string): string {
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad(purpose, id));
  const body = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64');
}

export function unseal(key: Buffer, purpose: string, id: string, sealed: string): string {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < NONCE_BYTES + TAG_BYTES) throw invalid('sealed-key-invalid', `the stored ${purpose} key ${id} is damaged`);
  const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
  d.setAAD(aad(purpose, id));
  d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  try {
    return Buffer.concat([d.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), d.final()]).toString('utf8');
  } catch {
    throw invalid(
      'sealed-key-invalid',
      `the stored ${purpose} key ${id} does not open with this master key: every node must use the same TRESOR_MASTER_KEY_FILE (the one the keys were created with)`,
    );
  }
}

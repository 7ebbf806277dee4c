// The master key (TRESOR_MASTER_KEY_FILE, issue 11 item 2): at least 32 random bytes in a
// file only its owner can read. Every node of one installation gets the same file; from
// it, HKDF-SHA256 (RFC 5869) derives one key per purpose: sealing the private keys kept
// in the database (pki/sealed.ts) and authenticating the audit trail (pki/audit-key.ts).
// The database never holds it, so a copy of the database alone opens no private key.

import { hkdfSync, randomBytes } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { invalid } from '../core/errors.js';

export const MASTER_KEY_MIN_BYTES = 32;

/** Reads and checks the master key file; refuses a missing, short or group/other-readable one. */
export async function loadMasterKey(file: string): Promise<Buffer> {
  let st;
  try {
    st = await stat(file);
  } catch {
    throw invalid('master-key-missing', `TRESOR_MASTER_KEY_FILE ${file} cannot be read: create it with \`tresor keygen --out ${file}\` (once, then copy it to every node) or unset the setting`);
  }
  if (!st.isFile()) throw invalid('master-key-missing', `TRESOR_MASTER_KEY_FILE ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw invalid('master-key-permissions', `TRESOR_MASTER_KEY_FILE ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${file}`);
  }
  const key = await readFile(file);
  if (key.length < MASTER_KEY_MIN_BYTES) {
    throw invalid('master-key-short', `TRESOR_MASTER_KEY_FILE ${file} holds ${key.length} bytes, at least ${MASTER_KEY_MIN_BYTES} random bytes are needed: write a new one with \`tresor keygen --out FILE\``);
  }
  return key;
}

/** `tresor keygen`: 32 random bytes, mode 0600, never over an existing file. */
export async function writeMasterKeyFile(file: string): Promise<void> {
  let fh;
  try {
    fh = await open(file, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw invalid('master-key-exists', `${file} exists; a master key is never overwritten (the keys sealed under it would be lost): choose another path`);
    throw e;
  }
  try {
    await fh.chmod(0o600);
    await fh.writeFile(randomBytes(MASTER_KEY_MIN_BYTES));
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export type KeyPurpose = 'tresor/sealed-keys/v1' | 'tresor/audit-mac/v1';

/** A 32-byte key for one purpose (HKDF-SHA256, RFC 5869; the purpose is the `info`). */
export function deriveKey(master: Buffer, purpose: KeyPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.from('tresor'), Buffer.from(purpose), 32));
}

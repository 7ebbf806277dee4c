// The audit key (core/ports/audit-key.ts): HKDF from the master key when there is one
// (every node then MACs alike), else 32 random bytes in <data>/keys/audit.key (0600,
// created at first start). Never stored in the database.

import { createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { invalid } from '../core/errors.js';
import type { AuditKey } from '../core/ports/audit-key.js';
import { writeFileAtomic } from '../lib/fs-atomic.js';
import { deriveKey, loadMasterKey } from './master-key.js';

export const AUDIT_KEY_FILE = path.join('keys', 'audit.key');

export function auditKeyFrom(secret: Buffer): AuditKey {
  return { mac: (purpose, data) => createHmac('sha256', secret).update(`tresor-audit-${purpose}-v1\0`).update(data).digest('hex') };
}

export const auditKeyFromMaster = (master: Buffer): AuditKey => auditKeyFrom(deriveKey(master, 'tresor/audit-mac/v1'));

/** The data directory's audit key; created when `create` and absent, else undefined when absent. */
export async function dataDirAuditKey(dataDir: string, opts: { create: boolean }): Promise<AuditKey | undefined> {
  const file = path.join(dataDir, AUDIT_KEY_FILE);
  try {
    const st = await stat(file);
    if ((st.mode & 0o077) !== 0) throw invalid('audit-key-permissions', `${file} is readable by others: chmod 600 ${file}`);
    const hex = (await readFile(file, 'utf8')).trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw invalid('audit-key-invalid', `${file} is not a Tresor audit key (64 hex digits); restore it from backup`);
    return auditKeyFrom(Buffer.from(hex, 'hex'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (!opts.create) return undefined;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await chmod(path.dirname(file), 0o700);
  const secret = randomBytes(32);
  await writeFileAtomic(file, `${secret.toString('hex')}\n`, 0o600);
  return auditKeyFrom(secret);
}

/**
 * The audit key a configuration names, for the offline commands (deps.ts, which has the
 * master key loaded already, derives it the same way): the master key's when
 * TRESOR_MASTER_KEY_FILE is set, else the data directory's.
 */
export async function auditKeyFor(cfg: { masterKeyFile?: string; dataDir: string }, opts: { create: boolean }): Promise<AuditKey | undefined> {
  return cfg.masterKeyFile ? auditKeyFromMaster(await loadMasterKey(cfg.masterKeyFile)) : dataDirAuditKey(cfg.dataDir, opts);
}

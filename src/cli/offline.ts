// The offline commands: they run where the data is (the data directory, or DATABASE_URL
// and S3_*) instead of through the server, take the data directory's lock
// (lib/data-dir-lock.ts) and are audited as the system through the core's helper.
//   tresor admin recover — a new one-time password for a global admin, its lock cleared;
//   tresor keys rotate   — a new token signing key (older tokens verify until they expire);
//   tresor tls renew     — a new server certificate from the same CA, SANs from
//                          TRESOR_TLS_HOSTNAMES (devices keep trusting the same ca.crt).

import { X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config.js';
import type { Deps } from '../deps.js';
import { DataDirLockedError, acquireDataDirLock } from '../lib/data-dir-lock.js';
import { writeFileAtomic } from '../lib/fs-atomic.js';
import { createLogger } from '../log.js';
import { emit, refused, usageError } from './output.js';
import { configFrom, withSettings } from './settings.js';

export const RECOVERED_PASSWORD_FILE = 'recovered-admin-password';
const SYSTEM = { kind: 'system', id: 0, name: 'tresor-cli' } as const;

/** Runs `fn` holding the data directory's lock; a held lock is a refusal (exit 1) naming the pid. */
export async function withDataDirLock<T>(cfg: Readonly<Config>, command: string, fn: () => Promise<T>): Promise<T> {
  let lock;
  try {
    lock = acquireDataDirLock(cfg.dataDir, command);
  } catch (e) {
    if (e instanceof DataDirLockedError) throw refused(e.message);
    throw e;
  }
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** The composition root (deps.ts) under the lock, quiet unless something goes wrong. */
async function withDeps<T>(cfg: Readonly<Config>, command: string, fn: (deps: Deps) => Promise<T>): Promise<T> {
  return withDataDirLock(cfg, command, async () => {
    const { createDeps } = await import('../deps.js');
    const deps = await createDeps(cfg, createLogger('error'));
    try {
      return await fn(deps);
    } finally {
      await deps.close();
    }
  });
}

/** Who ran it, for the audit row: the operating-system account (the one holding the data). */
export const operator = (): string => {
  try {
    return os.userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
};

/** `tls renew` with the master key: a new shared server pair in the database. */
async function renewSharedServerCertificate(deps: Deps, cfg: Readonly<Config>) {
  const { ensureDbPki } = await import('../pki/db-pki.js');
  const { deriveKey, loadMasterKey } = await import('../pki/master-key.js');
  const { createNodeSecretsRepo } = await import('../db/node-secrets.repo.js');
  const sealKey = deriveKey(await loadMasterKey(cfg.masterKeyFile!), 'tresor/sealed-keys/v1');
  return ensureDbPki({ repo: createNodeSecretsRepo(deps.db), sealKey, hostnames: cfg.tlsHostnames, renewServer: true });
}

export function offlineCommands(program: Command): void {
  program
    .command('keygen')
    .description('write a new master key (32 random bytes, mode 0600) for TRESOR_MASTER_KEY_FILE; never overwrites a file. Create it once and copy it to every node')
    .requiredOption('--out <file>', 'where to write it')
    .option('--json', 'print JSON for programs instead of text', false)
    .action(async (opts: { out: string; json: boolean }) => {
      const { writeMasterKeyFile } = await import('../pki/master-key.js');
      const file = path.resolve(opts.out);
      try {
        await writeMasterKeyFile(file);
      } catch (e) {
        const err = e as { kind?: string; message?: string };
        if (err.kind === 'invalid') throw refused(String(err.message));
        throw e;
      }
      emit(opts.json, { file }, () => `master key written to ${file} (mode 0600); back it up offline: without it the keys in the database cannot be opened`);
    });

  const admin = program.command('admin').description('emergency administration (offline)');
  withSettings(
    admin
      .command('recover')
      .description(
        'when no admin can log in: a new one-time password for a global admin (unlocked, enabled, sessions ended, must be changed at next login), ' +
          `written to <data-dir>/${RECOVERED_PASSWORD_FILE} (mode 0600); stop tresor serve first`,
      )
      .option('--user <name>', 'the global admin to recover (default: the oldest enabled one)')
      .option('--print', 'print the password once instead of writing the file', false)
      .option('--json', 'print JSON for programs instead of text', false),
  ).action(async (opts) => {
    const cfg = configFrom(opts);
    await withDeps(cfg, 'admin recover', async (deps) => {
      let r: { username: string; password: string };
      try {
        r = await deps.identity.admin.recoverAdmin({ username: opts.user, operator: operator() });
      } catch (e) {
        const err = e as { kind?: string; message?: string };
        if (err.kind === 'not-found') throw refused(String(err.message));
        throw e;
      }
      if (opts.print) {
        emit(opts.json, { username: r.username, password: r.password }, () => [`recovered ${r.username}; one-time password (shown once): ${r.password}`, 'log in with it and choose a new one']);
        return;
      }
      const file = path.join(cfg.dataDir, RECOVERED_PASSWORD_FILE);
      await writeFileAtomic(file, `${r.password}\n`, 0o600);
      emit(opts.json, { username: r.username, passwordFile: file }, () => `recovered ${r.username}: its one-time password is in ${file} (mode 0600); log in with it, choose a new one, then delete the file`);
    });
  });

  const keys = program.command('keys').description('token signing keys (offline)');
  withSettings(
    keys
      .command('rotate')
      .description('create a new token signing key; tokens signed by older keys keep working until they expire (stop tresor serve first)')
      .option('--json', 'print JSON for programs instead of text', false),
  ).action(async (opts) => {
    const cfg = configFrom(opts);
    await withDeps(cfg, 'keys rotate', async (deps) => {
      const { auditedRun } = await import('../core/audit.js');
      const kid = await auditedRun(deps.audit, { action: 'admin.keys.rotate', principal: SYSTEM, details: { via: 'cli', operator: operator() } }, async (note) => {
        const newest = await deps.identity.tokens.rotate();
        note.details.kid = newest;
        return newest;
      }, { strict: true });
      // With TRESOR_MASTER_KEY_FILE the key is in the database: running nodes sign with it within a minute.
      emit(opts.json, { kid }, () => `new signing key ${kid}; tokens signed by older keys stay valid until they expire`);
    });
  });

  const tls = program.command('tls').description('the server certificate (offline)');
  withSettings(
    tls
      .command('renew')
      .description(
        "issue a new server certificate from Tresor's CA, naming localhost, 127.0.0.1, ::1, the host name and TRESOR_TLS_HOSTNAMES (stop tresor serve first; devices keep trusting the same CA)",
      )
      .option('--json', 'print JSON for programs instead of text', false),
  ).action(async (opts) => {
    const cfg = configFrom(opts);
    if (cfg.tls.cert) throw usageError('TRESOR_TLS_CERT is set: Tresor serves your own certificate; renew it with your PKI and restart');
    await withDeps(cfg, 'tls renew', async (deps) => {
      const { auditedRun } = await import('../core/audit.js');
      const { ensureLocalPki } = await import('../pki/ca.js');
      const hostnames = [os.hostname(), ...cfg.tlsHostnames];
      const view = await auditedRun(deps.audit, { action: 'admin.tls.renew', principal: SYSTEM, details: { via: 'cli', operator: operator() } }, async (note) => {
        // Shared (TRESOR_MASTER_KEY_FILE): the new pair goes into the database for every node.
        const pki = cfg.masterKeyFile
          ? await renewSharedServerCertificate(deps, cfg)
          : await ensureLocalPki({ tlsDir: path.join(cfg.dataDir, 'tls'), hostnames, renewServer: true });
        const cert = new X509Certificate(pki.serverCertPem);
        const v = { subjectAltName: cert.subjectAltName ?? '', notAfter: new Date(cert.validTo).toISOString(), fingerprint256: cert.fingerprint256 };
        Object.assign(note.details, v);
        return v;
      }, { strict: true });
      emit(opts.json, view, () => [
        `new server certificate until ${view.notAfter}`,
        `names: ${view.subjectAltName}`,
        cfg.masterKeyFile ? 'running nodes serve it from their next key refresh (within a minute)' : 'start tresor serve to use it',
      ]);
    });
  });
}

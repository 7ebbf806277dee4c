// The master key (TRESOR_MASTER_KEY_FILE) and the sealing of private keys in the
// database (issue 11 item 2): refused when missing, short or readable by others;
// `tresor keygen` never overwrites; a sealed key opens only with the same master key
// and only as the purpose and id it was sealed for.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeps } from '../../src/deps.js';
import { createLogger } from '../../src/log.js';
import { deriveKey, loadMasterKey, writeMasterKeyFile } from '../../src/pki/master-key.js';
import { seal, unseal } from '../../src/pki/sealed.js';
import { testConfig } from '../helpers/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('master key', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-master-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('keygen writes 32 random bytes with mode 0600 and never overwrites', async () => {
    const file = path.join(dir, 'a.key');
    await writeMasterKeyFile(file);
    const st = await fs.stat(file);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.size).toBe(32);
    const before = await fs.readFile(file);
    await expect(writeMasterKeyFile(file)).rejects.toThrow(/never overwritten/);
    expect(await fs.readFile(file)).toEqual(before);
    expect((await loadMasterKey(file)).equals(before)).toBe(true);
  });

  it('`tresor keygen --out` refuses an existing file (exit 1) and says what to do', () => {
    const cli = path.join(ROOT, 'dist', 'src', 'cli.js');
    const file = path.join(dir, 'cli.key');
    expect(execFileSync(process.execPath, [cli, 'keygen', '--out', file], { encoding: 'utf8' })).toContain('mode 0600');
    let status = 0;
    let err = '';
    try {
      execFileSync(process.execPath, [cli, 'keygen', '--out', file], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e: any) {
      status = e.status;
      err = String(e.stderr);
    }
    expect(status).toBe(1);
    expect(err).toMatch(/exists.*choose another path/);
  });

  it('refuses a missing, short or group/other-readable key file, naming the fix', async () => {
    await expect(loadMasterKey(path.join(dir, 'absent.key'))).rejects.toThrow(/tresor keygen --out/);
    const short = path.join(dir, 'short.key');
    await fs.writeFile(short, randomBytes(16), { mode: 0o600 });
    await expect(loadMasterKey(short)).rejects.toThrow(/holds 16 bytes, at least 32/);
    const open = path.join(dir, 'open.key');
    await fs.writeFile(open, randomBytes(32));
    await fs.chmod(open, 0o644);
    await expect(loadMasterKey(open)).rejects.toThrow(/chmod 600/);
  });

  it('the server does not start with a bad master key (createDeps)', async () => {
    const data = path.join(dir, 'data');
    const open = path.join(dir, 'open2.key');
    await fs.writeFile(open, randomBytes(32));
    await fs.chmod(open, 0o640);
    await expect(createDeps(testConfig(data, { masterKeyFile: open }), createLogger('silent'))).rejects.toThrow(/readable by others/);
    await expect(createDeps(testConfig(data, { masterKeyFile: path.join(dir, 'nope.key') }), createLogger('silent'))).rejects.toThrow(/cannot be read/);
  });

  it('a sealed key opens only with the same key, purpose and id; every seal uses a fresh nonce', () => {
    const k = deriveKey(randomBytes(32), 'tresor/sealed-keys/v1');
    const a = seal(k, 'ca', 'ca', 'secret pem');
    expect(seal(k, 'ca', 'ca', 'secret pem')).not.toBe(a);
    expect(unseal(k, 'ca', 'ca', a)).toBe('secret pem');
    expect(() => unseal(k, 'token', 'ca', a)).toThrow(/same TRESOR_MASTER_KEY_FILE/);
    expect(() => unseal(k, 'ca', 'other', a)).toThrow(/same TRESOR_MASTER_KEY_FILE/);
    expect(() => unseal(deriveKey(randomBytes(32), 'tresor/sealed-keys/v1'), 'ca', 'ca', a)).toThrow(/same TRESOR_MASTER_KEY_FILE/);
    const raw = Buffer.from(a, 'base64');
    raw[14] ^= 1;
    expect(() => unseal(k, 'ca', 'ca', raw.toString('base64'))).toThrow();
    // Purposes derive different keys.
    const m = randomBytes(32);
    expect(deriveKey(m, 'tresor/sealed-keys/v1').equals(deriveKey(m, 'tresor/audit-mac/v1'))).toBe(false);
  });
});

describe('moving an installation to the master key', () => {
  it('adopts the CA of <data>/tls, so enrolled devices keep working', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-adopt-'));
    try {
      const data = path.join(dir, 'data');
      const before = await createDeps(testConfig(data), createLogger('silent'));
      const ca = before.pki.caCertPem;
      await before.close();
      const keyFile = path.join(dir, 'master.key');
      await writeMasterKeyFile(keyFile);
      const after = await createDeps(testConfig(data, { masterKeyFile: keyFile }), createLogger('silent'));
      try {
        expect(after.pki.caCertPem).toBe(ca);
        const rows = await after.db('node_secrets').where({ purpose: 'ca' }).select('public_pem', 'sealed_key');
        expect(rows).toHaveLength(1);
        expect(rows[0].public_pem).toBe(ca);
        expect(rows[0].sealed_key).not.toMatch(/PRIVATE KEY/);
      } finally {
        await after.close();
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

// Who gets an association: TLS only; a device certificate from Tresor's CA bound to
// the calling AE title, and/or user identity (PS3.7 D.3.3.7); everything else gets
// the same A-ASSOCIATE-RJ after the same delay, and is audited with its reason.

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemPrincipal } from '../../src/core/principal.js';
import { AE, auditOf, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { associate, connectRaw, UID, type RawRq } from '../helpers/dimse-raw.js';
import { run, tlsArgs } from '../helpers/dimse-tools.js';
import { opensslCertificate } from '../helpers/pki.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const CT = path.join(SAMPLE_DIR, 'CT_small.dcm');
const echoCtx = [{ id: 1, abstractSyntax: UID.Verification as string, transferSyntaxes: [UID.ImplicitLE as string] }];

/** A CA that is not Tresor's, and a client certificate from it. */
const foreignDevice = (dir: string, cn: string) =>
  opensslCertificate({ base: path.join(dir, `foreign-${cn}`), cn, extensions: 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' });

const rejected = (log: string) => /Association Rejected/.test(log) && /Calling AE Title Not Recognized|reason: 3/i.test(log);

describe('association authentication', () => {
  let env: DimseEnv;
  let ct: DeviceCreds;
  let ws: DeviceCreds;

  beforeAll(async () => {
    env = await startDimseEnv({ tuning: { rejectDelayMs: 400 } });
    ct = await env.device('CT01', [['radiology', 'writer']], { passcode: 'device passcode 42' });
    ws = await env.device('WS01', [['radiology', 'reader']]);
    await env.device('NOCERT', [['radiology', 'writer']], { passcode: 'another passcode 7', certificate: false });
    await env.user('alice', 'correct horse battery 7', [['radiology', 'writer']]);
  });
  afterAll(async () => env?.close());

  const echo = (args: string[]) => run('echoscu', ['-v', '-aec', AE, ...args, '127.0.0.1', String(env.port)]);

  it('has no plaintext port: plain DICOM on the TLS port fails', async () => {
    const r = await echo(['-aet', 'CT01']);
    expect(r.code).not.toBe(0);
    expect(await auditOf(env, 'association')).toEqual([]);
  });

  it('accepts a device certificate bound to the calling AE title', async () => {
    const r = await echo(['-aet', 'CT01', ...tlsArgs(ct, env.caPath)]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('refuses TLS without a client certificate and without user identity', async () => {
    const r = await echo(['-aet', 'CT01', '+tla', '+cf', env.caPath]);
    expect(rejected(r.stdout + r.stderr)).toBe(true);
  });

  it('refuses a certificate from another CA', async () => {
    const other = await foreignDevice(env.dir, 'CT01');
    const r = await echo(['-aet', 'CT01', ...tlsArgs(other, env.caPath)]);
    expect(r.code).not.toBe(0);
    const rows = await auditOf(env, 'association');
    expect(rows.at(-1)).toMatchObject({ outcome: 'denied', details: expect.objectContaining({ reason: 'certificate-untrusted' }) });
  });

  it('refuses device A\'s certificate with device B\'s AE title', async () => {
    const r = await echo(['-aet', 'WS01', ...tlsArgs(ct, env.caPath)]);
    expect(rejected(r.stdout + r.stderr)).toBe(true);
    const rows = await auditOf(env, 'association');
    expect(rows.at(-1)).toMatchObject({ outcome: 'denied', details: expect.objectContaining({ reason: 'certificate-unknown-or-unbound', callingAe: 'WS01' }) });
  });

  it('refuses a revoked certificate', async () => {
    const dev = await env.device('OLD01', [['radiology', 'reader']]);
    expect((await echo(['-aet', 'OLD01', ...tlsArgs(dev, env.caPath)])).code).toBe(0);
    await env.identity.admin.revokeDeviceCertificate(systemPrincipal, 'OLD01');
    const r = await echo(['-aet', 'OLD01', ...tlsArgs(dev, env.caPath)]);
    expect(rejected(r.stdout + r.stderr)).toBe(true);
  });

  it('refuses a called AE title that is not Tresor\'s', async () => {
    const r = await run('echoscu', ['-v', '-aet', 'CT01', '-aec', 'SOMEPACS', ...tlsArgs(ct, env.caPath), '127.0.0.1', String(env.port)]);
    expect(r.stdout + r.stderr).toMatch(/Association Rejected[\s\S]*Called AE Title Not Recognized/i);
  });

  it('accepts a user\'s name and password without a certificate, with a positive response when asked', async () => {
    const r = await run('storescu', ['-v', '-aet', 'ANYWS', '-aec', AE, '+tla', '+cf', env.caPath, '--user', 'alice', '--password', 'correct horse battery 7', '-rsp', '127.0.0.1', String(env.port), CT]);
    expect(r.code, r.stderr).toBe(0);
    const rows = await auditOf(env, 'association');
    expect(rows.at(-1)).toMatchObject({ outcome: 'success', principalKind: 'user', principalName: 'alice', details: expect.objectContaining({ via: 'dimse', authentication: 'user-identity' }) });
  });

  it('accepts a device passcode only for that device\'s own AE title', async () => {
    const ok = await run('storescu', ['-v', '-aet', 'NOCERT', '-aec', AE, '+tla', '+cf', env.caPath, '--user', 'NOCERT', '--password', 'another passcode 7', '127.0.0.1', String(env.port), CT]);
    expect(ok.code, ok.stderr).toBe(0);
    const other = await run('storescu', ['-v', '-aet', 'SOMEONE', '-aec', AE, '+tla', '+cf', env.caPath, '--user', 'NOCERT', '--password', 'another passcode 7', '127.0.0.1', String(env.port), CT]);
    expect(rejected(other.stdout + other.stderr)).toBe(true);
  });

  it('accepts a Tresor access token (JWT user identity)', async () => {
    const token = await env.identity.login({ username: 'alice', password: 'correct horse battery 7' });
    const file = path.join(env.dir, 'token.jwt');
    await fs.writeFile(file, token.accessToken);
    const r = await run('storescu', ['-v', '-aet', 'ANYWS', '-aec', AE, '+tla', '+cf', env.caPath, '--jwt', file, '127.0.0.1', String(env.port), CT]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await fs.writeFile(file, `${token.accessToken.slice(0, -4)}AAAA`);
    const bad = await run('storescu', ['-v', '-aet', 'ANYWS', '-aec', AE, '+tla', '+cf', env.caPath, '--jwt', file, '127.0.0.1', String(env.port), CT]);
    expect(rejected(bad.stdout + bad.stderr)).toBe(true);
  });

  it('refuses a wrong passcode even without a positive response requested, and locks the account after repeats', async () => {
    const attempt = (pw: string) => run('storescu', ['-v', '-aet', 'CT01', '-aec', AE, '+tla', '+cf', env.caPath, '--user', 'CT01', '--password', pw, '127.0.0.1', String(env.port), CT]);
    expect((await attempt('device passcode 42')).code).toBe(0);
    for (let i = 0; i < 5; i++) {
      const r = await attempt(`wrong passcode ${i}`);
      expect(rejected(r.stdout + r.stderr)).toBe(true);
    }
    // Locked now: the right passcode is refused too, with the same rejection.
    const locked = await attempt('device passcode 42');
    expect(rejected(locked.stdout + locked.stderr)).toBe(true);
    const logins = await auditOf(env, 'login');
    expect(logins.some((l) => l.outcome === 'denied' && l.details.reason === 'locked')).toBe(true);
    // The certificate still works for the device itself (lockout is for the passcode).
    expect((await echo(['-aet', 'CT01', ...tlsArgs(ct, env.caPath)])).code).toBe(0);
  });

  it('gives every authentication failure the same A-ASSOCIATE-RJ after the same delay', async () => {
    const cases: { name: string; creds?: { keyPath: string; certPath: string }; rq: RawRq }[] = [
      { name: 'no credentials', rq: { callingAe: 'CT01', contexts: echoCtx } },
      { name: 'unknown calling AE', creds: ws, rq: { callingAe: 'NOSUCH', contexts: echoCtx } },
      { name: 'wrong binding', creds: ws, rq: { callingAe: 'CT01', contexts: echoCtx } },
      { name: 'unknown user', rq: { callingAe: 'X', contexts: echoCtx, userIdentity: { type: 2, primary: 'nobody', secondary: 'whatever 12345' } } },
      { name: 'bad password', rq: { callingAe: 'X', contexts: echoCtx, userIdentity: { type: 2, primary: 'alice', secondary: 'not her password' } } },
      { name: 'username only', rq: { callingAe: 'X', contexts: echoCtx, userIdentity: { type: 1, primary: 'alice' } } },
      { name: 'bad JWT', rq: { callingAe: 'X', contexts: echoCtx, userIdentity: { type: 5, primary: 'eyJhbGciOiJub25lIn0.e30.' } } },
    ];
    const answers: { name: string; body: string; ms: number }[] = [];
    for (const c of cases) {
      const conn = await connectRaw(env.port, { creds: c.creds, caPath: env.caPath });
      const t0 = Date.now();
      const r = await associate(conn, c.rq);
      const ms = Date.now() - t0;
      conn.destroy();
      answers.push({ name: c.name, body: r === 'closed' ? 'closed' : `${r.type}:${r.body.toString('hex')}`, ms });
    }
    expect(new Set(answers.map((a) => a.body))).toEqual(new Set(['3:00010103']));
    for (const a of answers) {
      expect(a.ms, a.name).toBeGreaterThanOrEqual(390);
      expect(a.ms, a.name).toBeLessThan(900);
    }
  });

  describe('with dimseRequireBoth', () => {
    let strict: DimseEnv;
    let dev: DeviceCreds;
    beforeAll(async () => {
      strict = await startDimseEnv({ requireBoth: true });
      dev = await strict.device('CT02', [['radiology', 'writer']], { passcode: 'strict passcode 9' });
    });
    afterAll(async () => strict?.close());

    it('refuses a certificate alone and a passcode alone, accepts both', async () => {
      const s = (args: string[]) => run('storescu', ['-v', '-aet', 'CT02', '-aec', AE, ...args, '127.0.0.1', String(strict.port), CT]);
      const certOnly = await s(tlsArgs(dev, strict.caPath));
      expect(rejected(certOnly.stdout + certOnly.stderr)).toBe(true);
      const passOnly = await s(['+tla', '+cf', strict.caPath, '--user', 'CT02', '--password', 'strict passcode 9']);
      expect(rejected(passOnly.stdout + passOnly.stderr)).toBe(true);
      const both = await s([...tlsArgs(dev, strict.caPath), '--user', 'CT02', '--password', 'strict passcode 9']);
      expect(both.code, both.stdout + both.stderr).toBe(0);
    });
  });
});

// Issue 10 §1, issue 11 item 1: the built `tresor` command (node dist/src/cli.js) against a
// real `tresor serve` child process — HTTPS with the generated CA, DICOM TLS with dcmtk —
// and the offline commands on its data directory, including the data-directory lock.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadEdgeConfig } from '../../src/edge/config.js';
import { httpsRequest } from '../helpers/http.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADMIN_PASSWORD = 'first-Chief-Pa55word';
const SAMPLE = path.join(SAMPLE_DIR, 'CT_small.dcm');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dataDir: string;
let work: string;
let httpPort: number;
let dimsePort: number;
let baseEnv: NodeJS.ProcessEnv;

// The server allows 30 requests to /auth/* a minute per address (http/app.ts) and every
// online command logs in once: stay under it instead of weakening the server's limit.
const authCalls: number[] = [];
async function authBudget(): Promise<void> {
  for (;;) {
    const now = Date.now();
    while (authCalls.length && now - authCalls[0] > 61_000) authCalls.shift();
    if (authCalls.length < 26) break;
    await new Promise((r) => setTimeout(r, authCalls[0] + 61_500 - now));
  }
  authCalls.push(Date.now());
}
const ONLINE = new Set(['department', 'user', 'device']);

/** Runs the built CLI; never throws on a non-zero exit. */
async function tresor(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  if (ONLINE.has(args[0]) && !args.includes('--help')) await authBudget();
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...baseEnv, ...env }, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

function secretFile(name: string, content: string, mode = 0o600): string {
  const f = path.join(work, name);
  fs.writeFileSync(f, `${content}\n`, { mode });
  fs.chmodSync(f, mode);
  return f;
}

interface Serve {
  child: ChildProcess;
  log: () => string;
}

function startServe(extraEnv: NodeJS.ProcessEnv = {}): Serve {
  let log = '';
  const child = spawn(process.execPath, [CLI, 'serve'], { env: { ...baseEnv, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c) => (log += c));
  child.stderr!.on('data', (c) => (log += c));
  return { child, log: () => log };
}

async function waitListening(s: Serve): Promise<void> {
  const deadline = Date.now() + 150_000;
  while (!s.log().includes('tresor is listening')) {
    if (s.child.exitCode !== null) throw new Error(`tresor exited early:\n${s.log()}`);
    if (Date.now() > deadline) throw new Error(`tresor did not start:\n${s.log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const exited = (c: ChildProcess) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));

const url = () => `https://127.0.0.1:${httpPort}`;
const caFile = () => path.join(dataDir, 'tls', 'ca.crt');
const api = async (method: string, p: string, body?: unknown, token?: string) => {
  if (p.startsWith('/auth/')) await authBudget();
  return httpsRequest(url(), fs.readFileSync(caFile(), 'utf8'), method, p, { body, headers: token ? { authorization: `Bearer ${token}` } : {} });
};

// Each CLI run starts a Node process; the offline ones open the database and restart the server.
vi.setConfig({ testTimeout: 400_000 });

describe('tresor: admin commands against a running server', () => {
  let serve: Serve;
  let adminFile: string;
  let adminToken: string;

  beforeAll(async () => {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'ignore' });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-cli-data-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-cli-work-'));
    httpPort = await freePort();
    dimsePort = await freePort();
    baseEnv = { ...process.env, TRESOR_DATA_DIR: dataDir, TRESOR_HTTP_PORT: String(httpPort), TRESOR_DIMSE_PORT: String(dimsePort), TRESOR_LOG_LEVEL: 'info' };
    for (const k of ['DATABASE_URL', 'TRESOR_URL', 'TRESOR_CA', 'TRESOR_USER', 'TRESOR_PASSWORD_FILE', 'TRESOR_TLS_HOSTNAMES']) delete baseEnv[k];
    baseEnv.TRESOR_ADMIN_PASSWORD = ADMIN_PASSWORD;
    serve = startServe();
    await waitListening(serve);
    adminFile = secretFile('admin.pw', ADMIN_PASSWORD);
    // The online commands find the server and the admin's credentials here.
    Object.assign(baseEnv, { TRESOR_URL: url(), TRESOR_CA: caFile(), TRESOR_USER: 'admin', TRESOR_PASSWORD_FILE: adminFile });
    adminToken = (await api('POST', '/auth/token', { username: 'admin', password: ADMIN_PASSWORD })).body.access_token;
  }, 240_000);

  afterAll(async () => {
    if (serve?.child.exitCode === null && serve.child.signalCode === null) {
      serve.child.kill('SIGTERM');
      await exited(serve.child);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('--version prints package.json version; --help describes options and defaults; a usage error exits 2', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const v = await tresor(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    for (const cmd of [['serve'], ['user', 'add'], ['device', 'bundle'], ['admin', 'recover'], ['keys', 'rotate'], ['tls', 'renew']]) {
      const h = await tresor([...cmd, '--help']);
      expect(h.code, cmd.join(' ')).toBe(0);
      expect(h.stdout).toMatch(/Usage: tresor/);
      expect(h.stdout).toContain('default');
    }
    expect((await tresor(['serve', '--help'])).stdout).toContain('env TRESOR_TLS_HOSTNAMES');
    expect((await tresor(['user', 'list', '--help'])).stdout).toMatch(/env:\s+TRESOR_PASSWORD_FILE/);
    const bad = await tresor(['user', 'list', '--no-such-option']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('department add/list, user add/list/disable/enable/roles, with --json', async () => {
    const add = await tresor(['department', 'add', 'radiology']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain('created department radiology');
    expect((await tresor(['department', 'add', 'cardiology', '--json'])).code).toBe(0);
    const list = await tresor(['department', 'list', '--json']);
    expect(JSON.parse(list.stdout).map((d: any) => d.name).sort()).toEqual(['cardiology', 'radiology']);

    const u = await tresor(['user', 'add', 'carol', '--role', 'radiology:reader', '--json']);
    expect(u.code, u.stderr).toBe(0);
    const created = JSON.parse(u.stdout);
    expect(created.user.roles).toEqual([{ department: 'radiology', role: 'reader' }]);
    expect(created.password.length).toBeGreaterThanOrEqual(16);
    // The generated password, shown once, works.
    expect((await api('POST', '/auth/token', { username: 'carol', password: created.password })).status).toBe(200);

    expect((await tresor(['user', 'disable', 'carol'])).stdout).toContain('disabled carol');
    expect((await api('POST', '/auth/token', { username: 'carol', password: created.password })).status).toBe(401);
    expect((await tresor(['user', 'enable', 'carol'])).code).toBe(0);

    const roles = await tresor(['user', 'roles', 'carol', '--grant', 'cardiology:writer', '--revoke', 'radiology:reader', '--json']);
    expect(roles.code, roles.stderr).toBe(0);
    expect(JSON.parse(roles.stdout).roles).toEqual([{ department: 'cardiology', role: 'writer' }]);

    const users = await tresor(['user', 'list']);
    expect(users.stdout).toMatch(/^USERNAME\s+STATE/m);
    expect(users.stdout).toMatch(/^carol\s+enabled\s+false\s+cardiology:writer$/m);
  });

  it('refuses: a non-admin gets exit 1 with the API message; wrong password, a 0644 password file, an untrusted CA exit 2', async () => {
    const daveFile = secretFile('dave.pw', 'writer-chosen-Pa55');
    const addDave = await tresor(['user', 'add', 'dave', '--role', 'radiology:writer', '--new-password-file', daveFile]);
    expect(addDave.code, addDave.stderr).toBe(0);

    const denied = await tresor(['department', 'add', 'oncology', '--user', 'dave', '--password-file', daveFile]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^tresor: refused: only a global administrator may do this \(403 global-admin-required\)\n$/);
    expect(JSON.parse((await tresor(['department', 'list', '--json'])).stdout).map((d: any) => d.name)).not.toContain('oncology');

    const wrong = await tresor(['user', 'list', '--password-file', secretFile('wrong.pw', 'not-the-password')]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/login as admin refused.*check --user and --password-file/);

    const loose = await tresor(['user', 'list', '--password-file', secretFile('loose.pw', ADMIN_PASSWORD, 0o644)]);
    expect(loose.code).toBe(2);
    expect(loose.stderr).toMatch(/may be read by group or others \(mode 0644\): run chmod 600/);

    // Only the given CA is trusted: another CA (a fresh one) fails the TLS check.
    const otherCa = path.join(work, 'other-ca.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(work, 'other-ca.key'), '-out', otherCa, '-subj', '/CN=other', '-days', '1'], { stdio: 'ignore' });
    const untrusted = await tresor(['user', 'list', '--ca', otherCa]);
    expect(untrusted.code).toBe(2);
    expect(untrusted.stderr).toMatch(/TLS check of https:\/\/127\.0\.0\.1:\d+ failed .*--ca/);

    const down = await tresor(['user', 'list', '--url', `https://127.0.0.1:${await freePort()}`]);
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/cannot reach .*ECONNREFUSED.*check --url/);
  });

  it('user unlock clears a login lock; reset-password clears it too', async () => {
    const pw = secretFile('erin.pw', 'reader-initial-Pa55');
    expect((await tresor(['user', 'add', 'erin', '--role', 'radiology:reader', '--new-password-file', pw])).code).toBe(0);
    const lockErin = async () => {
      for (let i = 0; i < 5; i++) await api('POST', '/auth/token', { username: 'erin', password: 'wrong-password-x' });
    };
    await lockErin();
    expect((await api('POST', '/auth/token', { username: 'erin', password: 'reader-initial-Pa55' })).status).toBe(401);
    const unlock = await tresor(['user', 'unlock', 'erin']);
    expect(unlock.code, unlock.stderr).toBe(0);
    expect((await api('POST', '/auth/token', { username: 'erin', password: 'reader-initial-Pa55' })).status).toBe(200);

    await lockErin();
    expect((await api('POST', '/auth/token', { username: 'erin', password: 'reader-initial-Pa55' })).status).toBe(401);
    const reset = await tresor(['user', 'reset-password', 'erin', '--json']);
    expect(reset.code, reset.stderr).toBe(0);
    const { password } = JSON.parse(reset.stdout);
    const after = await api('POST', '/auth/token', { username: 'erin', password });
    expect(after.status).toBe(200);
    expect(after.body.password_change_required).toBe(true);

    // Audited as every admin operation.
    const audit = await api('GET', '/admin/audit?action=admin.user.unlock', undefined, adminToken);
    expect(audit.body.events[0]).toMatchObject({ principalName: 'admin', outcome: 'success', details: { username: 'erin', via: 'admin' } });
  });

  it('device add/list/passcode/bundle: the bundled storescu line stores a file; the edge bundle parses; revoke stops it', async () => {
    const add = await tresor(['device', 'add', 'CT_ROOM1', '--role', 'radiology:writer']);
    expect(add.code, add.stderr).toBe(0);
    const pc = await tresor(['device', 'passcode', 'CT_ROOM1', '--json']);
    expect(pc.code).toBe(0);
    expect(JSON.parse(pc.stdout).passcode.length).toBeGreaterThanOrEqual(16);

    const out = path.join(work, 'bundle-ct');
    const b = await tresor(['device', 'bundle', 'CT_ROOM1', '--out', out, '--dimse-port', String(dimsePort)]);
    expect(b.code, b.stderr).toBe(0);
    expect(fs.statSync(path.join(out, 'CT_ROOM1.key')).mode & 0o777).toBe(0o600);
    // ECDSA P-256 by default: the bundle's dcmtk storescu line below uses it.
    expect(createPrivateKey(fs.readFileSync(path.join(out, 'CT_ROOM1.key'))).asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
    const cert = new X509Certificate(fs.readFileSync(path.join(out, 'CT_ROOM1.crt')));
    expect(cert.checkIssued(new X509Certificate(fs.readFileSync(path.join(out, 'tresor-ca.crt'))))).toBe(true);
    expect(fs.readFileSync(path.join(out, 'tresor-ca.crt'), 'utf8')).toBe(fs.readFileSync(caFile(), 'utf8'));
    const orthanc = JSON.parse(fs.readFileSync(path.join(out, 'orthanc.json'), 'utf8'));
    expect(orthanc.DicomModalities.tresor).toEqual({ AET: 'TRESOR', Host: '127.0.0.1', Port: dimsePort, UseDicomTls: true });
    expect(orthanc.DicomAet).toBe('CT_ROOM1');

    const devices = JSON.parse((await tresor(['device', 'list', '--json'])).stdout);
    expect(devices.find((d: any) => d.aeTitle === 'CT_ROOM1')).toMatchObject({ hasPasscode: true, certificate: { fingerprint256: cert.fingerprint256.replace(/:/g, '').toLowerCase() } });

    // The bundle's storescu line, unchanged, run from another directory.
    const sent = await new Promise<Run>((resolve) =>
      execFile(path.join(out, 'storescu.sh'), [SAMPLE], { cwd: os.tmpdir(), encoding: 'utf8' }, (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
      ),
    );
    expect(sent.code, sent.stderr).toBe(0);
    const studies = await api('GET', '/dicomweb/studies', undefined, adminToken);
    expect(studies.status).toBe(200);
    expect(studies.body.length).toBe(1);

    const edgeDir = path.join(work, 'edge');
    const e = await tresor(['device', 'bundle', 'CT_ROOM1', '--edge', '--listen', '0.0.0.0:11112', '--allow', '10.0.0.7,10.0.0.8', '--out', edgeDir, '--dimse-port', String(dimsePort)]);
    expect(e.code, e.stderr).toBe(0);
    expect(fs.statSync(path.join(edgeDir, 'CT_ROOM1.key')).mode & 0o777).toBe(0o600);
    const edge = await loadEdgeConfig(path.join(edgeDir, 'edge.json'));
    expect(edge.devices[0]).toMatchObject({ aeTitle: 'CT_ROOM1', allow: ['10.0.0.7', '10.0.0.8'] });
    expect(edge.tresor).toMatchObject({ host: '127.0.0.1', port: dimsePort, aeTitle: 'TRESOR' });
    // Without an allow-list a non-loopback listener is refused, and nothing is written.
    const open = await tresor(['device', 'bundle', 'CT_ROOM1', '--edge', '--listen', '0.0.0.0:11113', '--out', path.join(work, 'edge-open')]);
    expect(open.code).toBe(2);
    expect(fs.existsSync(path.join(work, 'edge-open', 'edge.json'))).toBe(false);

    // The edge bundle issued a new certificate: the first bundle's one is revoked.
    const again = await new Promise<number>((resolve) => execFile(path.join(out, 'storescu.sh'), [SAMPLE], (err) => resolve(err ? Number(err.code) : 0)));
    expect(again).not.toBe(0);
    // An RSA key for a device that cannot use an EC one: its bundle works the same way.
    expect((await tresor(['device', 'bundle', 'CT_ROOM1', '--key-type', 'dsa', '--out', path.join(work, 'bundle-dsa')])).code).toBe(2);
    const rsaOut = path.join(work, 'bundle-rsa');
    const r = await tresor(['device', 'bundle', 'CT_ROOM1', '--key-type', 'rsa', '--out', rsaOut, '--dimse-port', String(dimsePort)]);
    expect(r.code, r.stderr).toBe(0);
    expect(createPrivateKey(fs.readFileSync(path.join(rsaOut, 'CT_ROOM1.key'))).asymmetricKeyDetails).toMatchObject({ modulusLength: 3072 });
    const viaRsa = await new Promise<Run>((resolve) =>
      execFile(path.join(rsaOut, 'storescu.sh'), [SAMPLE], { encoding: 'utf8' }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr })),
    );
    expect(viaRsa.code, viaRsa.stderr).toBe(0);
    const revoke = await tresor(['device', 'revoke', 'CT_ROOM1']);
    expect(revoke.code, revoke.stderr).toBe(0);
    expect(JSON.parse((await tresor(['device', 'list', '--json'])).stdout).find((d: any) => d.aeTitle === 'CT_ROOM1').certificate).toBeNull();
  });

  it('the data-directory lock: a second serve and an offline command are refused naming the pid; after SIGKILL the offline commands run', async () => {
    const pid = serve.child.pid!;
    const second = startServe({ TRESOR_HTTP_PORT: String(await freePort()), TRESOR_DIMSE_PORT: String(await freePort()) });
    await exited(second.child);
    expect(second.child.exitCode).not.toBe(0);
    expect(second.log()).toContain(`in use by process ${pid} (tresor serve`);
    const migrate = await tresor(['migrate']);
    expect(migrate.code).toBe(1);
    expect(migrate.stderr).toContain(`in use by process ${pid}`);
    // The first one is untouched.
    expect((await api('GET', '/healthz')).status).toBe(200);

    serve.child.kill('SIGKILL');
    await exited(serve.child);
    expect(fs.existsSync(path.join(dataDir, 'tresor.lock'))).toBe(true); // left by the crash

    const verify = await tresor(['audit', 'verify', '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout).ok).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'tresor.lock'))).toBe(false); // released on exit
  });

  it('offline: keys rotate, tls renew with TRESOR_TLS_HOSTNAMES, admin recover; the recovered admin loses its sessions and it must change its password', async () => {
    const oldKeys = fs.readdirSync(path.join(dataDir, 'keys'));
    const rotate = await tresor(['keys', 'rotate', '--json']);
    expect(rotate.code, rotate.stderr).toBe(0);
    const { kid } = JSON.parse(rotate.stdout);
    expect(oldKeys).not.toContain(`${kid}.key`);
    expect(fs.statSync(path.join(dataDir, 'keys', `${kid}.key`)).mode & 0o777).toBe(0o600);

    const oldCert = fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    const badName = await tresor(['tls', 'renew'], { TRESOR_TLS_HOSTNAMES: 'bad name!' });
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('TRESOR_TLS_HOSTNAMES');
    const renew = await tresor(['tls', 'renew', '--json'], { TRESOR_TLS_HOSTNAMES: 'pacs.clinic.lan,192.168.7.20' });
    expect(renew.code, renew.stderr).toBe(0);
    const newCert = new X509Certificate(fs.readFileSync(path.join(dataDir, 'tls', 'server.crt')));
    expect(newCert.raw.equals(new X509Certificate(oldCert).raw)).toBe(false);
    expect(newCert.subjectAltName).toContain('DNS:pacs.clinic.lan');
    expect(newCert.subjectAltName).toContain('IP Address:192.168.7.20');
    expect(newCert.checkIssued(new X509Certificate(fs.readFileSync(caFile())))).toBe(true);

    const recover = await tresor(['admin', 'recover']);
    expect(recover.code, recover.stderr).toBe(0);
    const file = path.join(dataDir, 'recovered-admin-password');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const recovered = fs.readFileSync(file, 'utf8').trim();
    expect(recover.stdout).toContain(file);
    expect(recover.stdout).not.toContain(recovered);
    const printed = await tresor(['admin', 'recover', '--print', '--user', 'nobody']);
    expect(printed.code).toBe(1);

    const serve2 = startServe({ TRESOR_TLS_HOSTNAMES: 'pacs.clinic.lan,192.168.7.20' });
    try {
      await waitListening(serve2);
      // The recovery ended the admin's sessions (the rotation alone would not: last test).
      expect((await api('GET', '/admin/users', undefined, adminToken)).status).toBe(401);
      expect((await api('POST', '/auth/token', { username: 'admin', password: ADMIN_PASSWORD })).status).toBe(401);
      const login = await api('POST', '/auth/token', { username: 'admin', password: recovered });
      expect(login.status).toBe(200);
      expect(login.body.password_change_required).toBe(true);
      // Until changed, the admin API refuses it, and the CLI says what to do.
      const blocked = await tresor(['user', 'list', '--password-file', secretFile('recovered.pw', recovered)]);
      expect(blocked.code).toBe(2);
      expect(blocked.stderr).toContain('must change its one-time password first');
      const changed = await api('POST', '/auth/password', { currentPassword: recovered, newPassword: 'chief-new-Pa55word' }, login.body.access_token);
      expect(changed.status).toBe(200);
      const ok = await tresor(['user', 'list', '--json', '--password-file', secretFile('new.pw', 'chief-new-Pa55word')]);
      expect(ok.code, ok.stderr).toBe(0);
      // The audit trail names the offline operations, as the system with the OS account.
      const token = changed.body.access_token;
      for (const action of ['admin.user.recover', 'admin.keys.rotate', 'admin.tls.renew']) {
        const ev = (await api('GET', `/admin/audit?action=${action}`, undefined, token)).body.events;
        expect(ev.length, action).toBeGreaterThan(0);
        expect(ev[0]).toMatchObject({ principalKind: 'system', principalName: 'tresor-cli', details: { via: 'cli', operator: os.userInfo().username } });
      }
    } finally {
      serve2.child.kill('SIGTERM');
      await exited(serve2.child);
    }
  });

  it('keys rotate keeps tokens signed by the previous key valid', async () => {
    // A token signed before a rotation, checked by a server started after it.
    const serve3 = startServe();
    let token: string;
    try {
      await waitListening(serve3);
      token = (await api('POST', '/auth/token', { username: 'admin', password: 'chief-new-Pa55word' })).body.access_token;
    } finally {
      serve3.child.kill('SIGTERM');
      await exited(serve3.child);
    }
    expect((await tresor(['keys', 'rotate'])).code).toBe(0);
    const serve4 = startServe();
    try {
      await waitListening(serve4);
      expect((await api('GET', '/admin/users', undefined, token)).status).toBe(200);
    } finally {
      serve4.child.kill('SIGTERM');
      await exited(serve4.child);
    }
  });
});

// edge.json: the bundle writer's output loads; every problem is reported on its own
// line; private keys must be mode 0600; a non-loopback listener needs an allow-list;
// a C-MOVE destination needs a serverAuth certificate. Also the `tresor edge` command
// itself: one line when it listens, exit code 2 on a bad config.

import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeEdgeBundle, parseAllow, parseEndpoint, type EdgeBundleInput } from '../../src/edge/bundle.js';
import { EdgeConfigError, loadEdgeConfig, parseEdgeConfig } from '../../src/edge/config.js';
import { ensureLocalPki, type Pki } from '../../src/pki/ca.js';
import { issueDeviceCertificate, type IssuedDeviceCertificate } from '../../src/pki/device-cert.js';

const ROOT = path.resolve(__dirname, '../..');

async function problemsOf(file: string): Promise<string[]> {
  try {
    await loadEdgeConfig(file);
  } catch (e) {
    if (e instanceof EdgeConfigError) return e.problems;
    throw e;
  }
  return [];
}

function runCli(args: string[], until: RegExp, timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const done = (code: number | null) => {
      clearTimeout(timer);
      resolve({ code, out });
    };
    const onData = (d: Buffer) => {
      out += d;
      if (until.test(out)) {
        child.kill('SIGTERM');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => done(code));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  });
}

describe('edge.json', () => {
  let dir: string;
  let pki: Pki;
  let client: IssuedDeviceCertificate;
  let server: IssuedDeviceCertificate;
  let input: (ae: string, issued: IssuedDeviceCertificate, extra?: Partial<EdgeBundleInput>) => EdgeBundleInput;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-edge-config-'));
    pki = await ensureLocalPki({ tlsDir: path.join(dir, 'tls') });
    client = await issueDeviceCertificate(pki, { aeTitle: 'CT01' });
    server = await issueDeviceCertificate(pki, { aeTitle: 'WS01', storageScp: true });
    input = (ae, issued, extra = {}) => ({
      edgeName: 'CLINIC1',
      aeTitle: ae,
      certificatePem: issued.certificatePem,
      privateKeyPem: issued.privateKeyPem,
      caPem: pki.caCertPem,
      tresor: { host: 'pacs.example.org', port: 2762, aeTitle: 'TRESOR' },
      listen: { host: '127.0.0.1', port: 11112 },
      allow: ['127.0.0.1'],
      ...extra,
    });
  }, 120_000);
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a bundle loads; the key is 0600; a second device joins the same edge.json', async () => {
    const out = path.join(dir, 'b1');
    await writeEdgeBundle(out, input('CT01', client));
    const file = await writeEdgeBundle(out, input('WS01', server, { listen: { host: '0.0.0.0', port: 11113 }, allow: ['192.168.10.0/24', '10.0.0.5'], storageScp: { listen: { host: '0.0.0.0', port: 2763 }, target: { host: '192.168.10.7', port: 104 }, allow: ['10.1.1.1'] } }));
    const cfg = await loadEdgeConfig(file);
    expect(cfg.name).toBe('CLINIC1');
    expect(cfg.devices.map((d) => d.aeTitle)).toEqual(['CT01', 'WS01']);
    expect(cfg.tresor).toMatchObject({ host: 'pacs.example.org', port: 2762, aeTitle: 'TRESOR', serverName: 'pacs.example.org' });
    expect((await fs.stat(path.join(out, 'CT01.key'))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(out, 'edge.json'))).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(path.join(out, 'tresor-ca.crt'), 'utf8')).toBe(pki.caCertPem);
    // The config names files, never holds a key.
    expect(await fs.readFile(file, 'utf8')).not.toContain('PRIVATE KEY');
  });

  it('refuses a private key that others can read', async () => {
    const out = path.join(dir, 'b2');
    const file = await writeEdgeBundle(out, input('CT01', client));
    await fs.chmod(path.join(out, 'CT01.key'), 0o644);
    const problems = await problemsOf(file);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/CT01\.key has mode 0644; it must be 0600/);
  });

  it('refuses a non-loopback listener without an allow-list (and the bundle is not written)', async () => {
    const out = path.join(dir, 'b3');
    await expect(writeEdgeBundle(out, input('CT01', client, { listen: { host: '0.0.0.0', port: 11112 }, allow: [] }))).rejects.toThrow(/allow: required: 0\.0\.0\.0 is not a loopback address/);
    await expect(fs.stat(path.join(out, 'CT01.key'))).rejects.toThrow();
    const { problems } = parseEdgeConfig(
      {
        name: 'E1',
        tresor: { host: 'h', port: 2762, aeTitle: 'TRESOR', caFile: 'ca.crt' },
        devices: [{ aeTitle: 'CT01', certFile: 'a.crt', keyFile: 'a.key', listen: { host: '127.0.0.1', port: 1 }, storageScp: { listen: { host: '192.168.1.2', port: 2 }, target: { host: '127.0.0.1', port: 104 } } }],
      },
      dir,
    );
    expect(problems).toEqual(['edge.devices[0].storageScp.allow: required: 192.168.1.2 is not a loopback address']);
  });

  it('reports every problem on its own line', () => {
    const { problems } = parseEdgeConfig(
      {
        name: 'lower case',
        colour: 'blue',
        tresor: { host: 'h', port: 70000, aeTitle: 'A\\B', caFile: 'ca.crt' },
        devices: [
          { aeTitle: 'CT01', certFile: 'a.crt', keyFile: 'a.key', listen: { host: '127.0.0.1', port: 1 }, allow: ['300.1.1.1', '10.0.0.0/33'] },
          { aeTitle: 'CT01', certFile: 'a.crt', keyFile: 'a.key', listen: { host: '127.0.0.1', port: 2 } },
        ],
        limits: { maxPduBytes: 100 },
        timeouts: { artimMs: 1000 },
      },
      dir,
    );
    expect(problems.sort()).toEqual(
      [
        'edge.name: must be 1–11 characters A-Z 0-9 _ -',
        'edge.colour: unknown setting',
        'edge.tresor.port: must be an integer from 1 to 65535',
        'edge.tresor.aeTitle: must be an AE title (1–16 characters, no backslash)',
        'edge.devices[0].allow[0]: not an IP address or CIDR block',
        'edge.devices[0].allow[1]: not an IP address or CIDR block',
        'edge.devices[1].aeTitle: CT01 is listed twice',
        'edge.limits.maxPduBytes: must be an integer from 4096 to 67108864',
        'edge.timeouts.artimMs: must be at least connectMs + 2000',
      ].sort(),
    );
  });

  it('a C-MOVE destination needs a serverAuth certificate; the certificate must be the AE\'s and from Tresor\'s CA', async () => {
    const out = path.join(dir, 'b4');
    const file = await writeEdgeBundle(out, input('CT01', client, { storageScp: { listen: { host: '127.0.0.1', port: 2763 }, target: { host: '127.0.0.1', port: 104 } } }));
    expect(await problemsOf(file)).toEqual([expect.stringMatching(/device CT01: storageScp needs a certificate with serverAuth/)]);
    const wrongAe = await writeEdgeBundle(path.join(dir, 'b5'), input('CT02', client));
    expect(await problemsOf(wrongAe)).toEqual(['device CT02: the certificate is not issued to CT02']);
  });

  it('the command-line options of `tresor device bundle --edge` parse', () => {
    expect(parseEndpoint('0.0.0.0:11112')).toEqual({ host: '0.0.0.0', port: 11112 });
    expect(parseEndpoint('[::1]:104')).toEqual({ host: '::1', port: 104 });
    expect(() => parseEndpoint('host')).toThrow(EdgeConfigError);
    expect(parseAllow('10.0.0.1, 10.0.1.0/24,')).toEqual(['10.0.0.1', '10.0.1.0/24']);
  });

  it('`tresor edge --config`: one line when it listens; a bad config exits 2 with the problem', async () => {
    const out = path.join(dir, 'cli');
    const file = await writeEdgeBundle(out, input('CT01', client, { listen: { host: '127.0.0.1', port: 0 } }));
    const ok = await runCli(['edge', '--config', file], /tresor edge listening/);
    expect(ok.out.split('\n').filter((l) => l.includes('tresor edge listening'))).toHaveLength(1);
    expect(ok.code).toBe(0);
    await fs.chmod(path.join(out, 'CT01.key'), 0o640);
    const bad = await runCli(['edge', '--config', file], /$^/);
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/must be 0600/);
  }, 120_000);
});

// The whole server as `tresor serve` starts it (main.ts startServer: ports probed,
// createDeps, bootstrap, HTTPS + DIMSE + metrics), on free ports of 127.0.0.1 in a
// fresh data directory, and a real HTTP client (curl) that trusts its generated CA.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { systemPrincipal, type Role } from '../../src/core/principal.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/main.js';
import type { Config } from '../../src/config.js';
import { testConfig, type TestConfigChanges } from './config.js';
import { run, type RunResult } from './dimse-tools.js';

export interface Served {
  dir: string;
  server: RunningServer;
  caPath: string;
  base: string;
  /** curl -s with the CA; returns the body and, last line, the status code. */
  curl(args: string[]): Promise<{ status: number; body: string; result: RunResult }>;
  department(name: string): Promise<void>;
  user(username: string, password: string, roles: [string, Role][]): Promise<void>;
  device(aeTitle: string, roles: [string, Role][]): Promise<{ keyPath: string; certPath: string }>;
  token(username: string, password: string): Promise<string>;
  close(): Promise<void>;
}

export async function startServed(changes: (dir: string) => TestConfigChanges = () => ({})): Promise<Served> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-served-'));
  const config: Config = testConfig(path.join(dir, 'data'), { httpPort: 0, dimsePort: 0, adminPassword: 'Correct-Horse-Battery-9', ...changes(dir) });
  const server = await startServer(config, createLogger('silent'));
  const caPath = path.join(config.dataDir, 'tls', 'ca.crt');
  const base = `https://127.0.0.1:${server.httpPort}`;
  const identity = server.deps.identity;
  const curl = async (args: string[]) => {
    const result = await run('curl', ['-s', '--cacert', caPath, '-w', '\n%{http_code}', ...args], { timeoutMs: 60_000 });
    const i = result.stdout.lastIndexOf('\n');
    return { status: Number(result.stdout.slice(i + 1)), body: result.stdout.slice(0, i), result };
  };
  return {
    dir,
    server,
    caPath,
    base,
    curl,
    async department(name) {
      await identity.admin.createDepartment(systemPrincipal, { name });
    },
    async user(username, password, roles) {
      await identity.admin.createUser(systemPrincipal, { username, password, roles: roles.map(([department, role]) => ({ department, role })), globalAdmin: false });
    },
    async device(aeTitle, roles) {
      await identity.admin.createDevice(systemPrincipal, { aeTitle, roles: roles.map(([department, role]) => ({ department, role })), host: null, port: null });
      const issued = await identity.admin.issueDeviceCertificate(systemPrincipal, aeTitle, {});
      const keyPath = path.join(dir, `${aeTitle}.key`);
      const certPath = path.join(dir, `${aeTitle}.crt`);
      await fs.writeFile(keyPath, issued.privateKey!, { mode: 0o600 });
      await fs.writeFile(certPath, issued.certificate);
      return { keyPath, certPath };
    },
    async token(username, password) {
      const r = await curl(['-X', 'POST', `${base}/auth/token`, '-H', 'content-type: application/json', '-d', JSON.stringify({ username, password })]);
      if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.body}`);
      return (JSON.parse(r.body) as { access_token: string }).access_token;
    },
    async close() {
      await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Prometheus text format (0.0.4): every sample line parsed, or an error naming the line. */
export function parsePrometheusText(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|NaN|\+Inf|-Inf))( -?[0-9]+)?$/;
  for (const l of text.split('\n')) {
    if (l === '' || l.startsWith('# HELP ') || l.startsWith('# TYPE ')) continue;
    const m = line.exec(l);
    if (!m) throw new Error(`not Prometheus text: ${l}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return samples;
}

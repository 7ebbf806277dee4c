// Issue 10, item 4: start-up order and stop. A port in use fails before anything is
// written, in one line; an unreachable database is waited for (one log line per wait)
// and given up on in one line; a database that comes up late is used; SIGTERM to
// `npm start` stops node (no orphan); log lines carry ISO-8601 times.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../src/db/knex.js';
import { createLogger } from '../../src/log.js';
import { startServer } from '../../src/main.js';
import { testConfig } from '../helpers/config.js';
import { freePort, run } from '../helpers/dimse-tools.js';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const PG = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-startup-'));
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('TRESOR_') && !k.startsWith('S3_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, ...extra };
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** Direct children of `pid`, from /proc/<pid>/stat (field 4 is the parent's pid). */
const children = (pid: number): number[] =>
  fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid ? [Number(d)] : [];
    } catch {
      return [];
    }
  });

describe('start-up order, waits and stop', () => {
  beforeAll(() => {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'ignore' });
  }, 240_000);

  it('a port in use: one line, exit code 1, and nothing written (no data directory)', async () => {
    const holder = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    const busy = (holder.address() as net.AddressInfo).port;
    const dir = path.join(tmp(), 'data');
    try {
      const r = await run(process.execPath, [CLI, 'serve'], { env: cleanEnv({ TRESOR_DATA_DIR: dir, TRESOR_HTTP_PORT: String(busy), TRESOR_DIMSE_PORT: String(await freePort()) }) });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([`tresor: HTTPS port ${busy} on 127.0.0.1 is in use by another process: stop the other process or choose another port (TRESOR_HTTP_PORT)`]);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(fs.existsSync(dir)).toBe(false);
    } finally {
      holder.close();
    }
  }, 60_000);

  it('a database that does not answer: one log line per wait, then one line and exit code 1', async () => {
    const dir = path.join(tmp(), 'data');
    const closed = await freePort();
    const r = await run(process.execPath, [CLI, 'serve'], {
      env: cleanEnv({
        TRESOR_DATA_DIR: dir,
        TRESOR_HTTP_PORT: String(await freePort()),
        TRESOR_DIMSE_PORT: String(await freePort()),
        DATABASE_URL: `postgres://postgres@127.0.0.1:${closed}/postgres`,
        TRESOR_STARTUP_WAIT_SECONDS: '4',
      }),
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^tresor: the database and the blob store did not answer within 4 s \(.*ECONNREFUSED.*\): check that it runs/);
    const waits = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; time: string; attempt?: number }).filter((l) => l.msg === 'waiting for the database and the blob store');
    expect(waits.length).toBeGreaterThanOrEqual(1);
    for (const w of waits) expect(w.time).toMatch(ISO);
  }, 60_000);

  it('a database that comes up late is waited for, and the server starts', async () => {
    // A TCP relay to PostgreSQL that opens only once Tresor said it waits (a boot-order race).
    const port = await freePort();
    const target = new URL(PG);
    const relay = net.createServer((c) => {
      const up = net.connect(Number(target.port || 5432), target.hostname);
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    let opening: NodeJS.Timeout | undefined;
    const admin = await openDb({ url: PG });
    const name = `tresor_test_late_${process.pid}_${Date.now()}`;
    await admin.raw('CREATE DATABASE ??', [name]);
    const url = new URL(PG);
    url.host = `127.0.0.1:${port}`;
    url.pathname = `/${name}`;
    const lines: string[] = [];
    const logger = createLogger(
      'info',
      new Writable({
        write: (c, _e, cb) => {
          lines.push(String(c));
          if (String(c).includes('waiting for the database') && !opening) opening = setTimeout(() => relay.listen(port, '127.0.0.1'), 200);
          cb();
        },
      }) as never,
    );
    const dir = tmp();
    try {
      const server = await startServer(testConfig(path.join(dir, 'data'), { httpPort: 0, dimsePort: 0, databaseUrl: url.toString(), adminPassword: 'Correct-Horse-Battery-9', startupWaitSeconds: 30 }), logger);
      await server.close();
      const waits = lines.map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg === 'waiting for the database and the blob store');
      expect(waits.length).toBeGreaterThanOrEqual(1);
      expect(lines.some((l) => l.includes('tresor is listening'))).toBe(true);
    } finally {
      clearTimeout(opening);
      relay.close();
      await admin.raw('DROP DATABASE IF EXISTS ?? WITH (FORCE)', [name]).catch(() => undefined);
      await admin.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  describe('npm start', () => {
    const dir = tmp();
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('SIGTERM to the npm process stops the server: no node process is left; log times are ISO 8601', async () => {
      const env = cleanEnv({ TRESOR_DATA_DIR: path.join(dir, 'data'), TRESOR_HTTP_PORT: String(await freePort()), TRESOR_DIMSE_PORT: String(await freePort()), TRESOR_ADMIN_PASSWORD: 'Correct-Horse-Battery-9' });
      const npm = spawn('npm', ['start', '--silent'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      npm.stdout!.on('data', (c) => (log += c));
      npm.stderr!.on('data', (c) => (log += c));
      const deadline = Date.now() + 180_000;
      while (!log.includes('tresor is listening')) {
        if (npm.exitCode !== null) throw new Error(`npm start exited early:\n${log}`);
        if (Date.now() > deadline) throw new Error(`did not start:\n${log}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      // Every process under npm (with `exec` in the script: node itself, no shell between).
      const under: number[] = [];
      const walk = (pid: number) => children(pid).forEach((c) => (under.push(c), walk(c)));
      walk(npm.pid!);
      expect(under.length).toBeGreaterThan(0);
      const exited = new Promise((r) => npm.once('exit', r));
      process.kill(npm.pid!, 'SIGTERM');
      await exited;
      for (let i = 0; i < 100 && under.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
      expect(under.filter(alive)).toEqual([]);
      const json = log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { time: unknown; msg: string });
      expect(json.length).toBeGreaterThan(2);
      for (const l of json) expect(l.time).toMatch(ISO);
      expect(json.some((l) => l.msg === 'stopped')).toBe(true);
    }, 240_000);
  });
});

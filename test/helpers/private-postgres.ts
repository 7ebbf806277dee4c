// A PostgreSQL cluster of the test's own, so a test can stop and start the server under
// a running Tresor (issue 11 item 3) without touching the shared cluster on 5432 that
// every other test file uses. initdb in a temporary directory, pg_ctl on a free port,
// listening on 127.0.0.1 only, its Unix socket in that directory, trust authentication.
// As root the server runs as the `postgres` OS user (PostgreSQL refuses to run as root),
// through runuser. Binaries: $TRESOR_PG_BIN, else the newest /usr/lib/postgresql/<major>/bin.
// scripts/test-prereqs.sh and .ci/run check that all of this is there; a missing piece
// fails the test, never skips it.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './dimse-tools.js';

const exec = promisify(execFile);

export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  /** pg_ctl stop -m <mode>: fast ends sessions with 57P01; immediate is a crash (recovery on start). */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** pg_ctl start on the same port and data, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Stops it (immediate) and removes its files. */
  close(): Promise<void>;
}

export function postgresBinDir(): string {
  const fromEnv = process.env.TRESOR_PG_BIN;
  const candidates = fromEnv
    ? [fromEnv]
    : (fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql') : [])
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => `/usr/lib/postgresql/${v}/bin`);
  const dir = candidates.find((d) => fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'pg_ctl')));
  if (!dir) throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql (Debian) or set TRESOR_PG_BIN');
  return dir;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const root = process.getuid?.() === 0;
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'tresor-pg-'));
  const data = path.join(base, 'data');
  const log = path.join(base, 'server.log');
  if (root) {
    // The postgres user must own the directory it writes into.
    const { stdout } = await exec('id', ['-u', 'postgres']).catch(() => {
      throw new Error('the postgres OS user is missing (it comes with Debian\'s postgresql package)');
    });
    const uid = Number(stdout.trim());
    const gid = Number((await exec('id', ['-g', 'postgres'])).stdout.trim());
    await fsp.chown(base, uid, gid);
  }
  const as = async (cmd: string, args: string[]) => {
    const file = path.join(bin, cmd);
    try {
      return root ? await exec('runuser', ['-u', 'postgres', '--', file, ...args], { timeout: 120_000 }) : await exec(file, args, { timeout: 120_000 });
    } catch (e) {
      const err = e as Error & { stderr?: string };
      const tail = await fsp.readFile(log, 'utf8').then((t) => t.slice(-2000)).catch(() => '');
      throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr || err.message}\n${tail}`, { cause: e });
    }
  };
  // --no-sync and fsync=off: a test cluster; an immediate stop is a server crash, not a
  // power loss, so what was committed is in the page cache and survives it.
  await as('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  const port = await freePort();
  const opts = `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${base} -c fsync=off -c max_connections=50 -c shared_buffers=16MB`;
  const start = async () => void (await as('pg_ctl', ['-D', data, '-l', log, '-o', opts, '-w', '-t', '60', 'start']));
  const running = () => fs.existsSync(path.join(data, 'postmaster.pid'));
  await start();
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    async stop(mode) {
      await as('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
    },
    async close() {
      if (running()) await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await fsp.rm(base, { recursive: true, force: true });
    },
  };
}

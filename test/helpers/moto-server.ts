// A real S3 server for fault tests: moto_server (moto 5.2.1, `moto[server]`) as a
// child process on 127.0.0.1. Unlike s3rver it implements multipart uploads and
// ListMultipartUploads, and as a separate process it can be stopped (connections
// refused), restarted on the same port (state is in memory: the bucket is gone, as
// after an S3 restart without persistence) and frozen with SIGSTOP (a hung S3: the
// kernel still accepts connections and buffers bytes, nothing answers).
//
// Where moto comes from: PyPI is not reachable from this machine kind or from CI; the
// machine image ships moto 5.2.1 in pyenv's Python 3.11 (`moto_server` on PATH via
// the pyenv shims). .ci/run checks for it and fails when it is absent, and so does
// this helper: a test that needs moto never skips silently.
//
// Use:
//   const s3 = await startMotoServer();
//   const store = await createS3BlobStore(s3.config);
//   ... s3.pause() / s3.resume() / s3.stop() / s3.restart() ...
//   await s3.close();

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import type { S3Config } from '../../src/config.js';

/** How to start moto, tried in order. */
const COMMANDS: [string, string[]][] = [
  ['moto_server', []],
  ['python3', ['-m', 'moto.server']],
  // pyenv's shim, for a PATH without pyenv (where the machine image installed moto).
  [path.join(os.homedir(), '.pyenv', 'shims', 'moto_server'), []],
];

export const MOTO_MISSING =
  'moto_server is not installed: the S3 fault tests need it. Install it with ' +
  "`pip install 'moto[server]==5.2.1'` (any Python ≥ 3.9), or use the machine image that ships it " +
  "(pyenv's Python 3.11 with moto 5.2.1), and run the tests again.";

const READY_TIMEOUT_MS = 20_000;

export interface MotoServer {
  config: S3Config;
  url: string;
  port: number;
  /** Pid of the running server process (changes on restart). */
  readonly pid: number;
  /** SIGSTOP: S3 hangs (connections are accepted by the kernel, nothing answers). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Stops the server: connections are refused until restart(). */
  stop(): Promise<void>;
  /** Starts a fresh server on the same port (empty: no bucket, no objects). */
  restart(): Promise<void>;
  /** Stops for good. */
  close(): Promise<void>;
}

export interface StartMotoOptions {
  /** S3_PART_SIZE for the store (default 5 GiB: single PUTs). */
  partSize?: number;
  /** S3_TIMEOUT_MS for the store. */
  timeoutMs?: number;
}

export async function startMotoServer(options: StartMotoOptions = {}): Promise<MotoServer> {
  const first = await spawnMoto(0);
  const port = first.port;
  let child = first.child;
  const bucket = `tresor-moto-${randomBytes(6).toString('hex')}`;
  const server: MotoServer = {
    config: {
      endPoint: '127.0.0.1',
      port,
      useSSL: false,
      accessKey: 'testing', // moto accepts any credentials
      secretKey: 'testing',
      bucket,
      region: 'us-east-1',
      partSize: options.partSize ?? 5 * 1024 ** 3,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    },
    url: `http://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid ?? -1;
    },
    pause() {
      child.kill('SIGSTOP');
    },
    resume() {
      child.kill('SIGCONT');
    },
    async stop() {
      await kill(child);
    },
    async restart() {
      await kill(child);
      ({ child } = await spawnMoto(port));
    },
    async close() {
      await kill(child);
    },
  };
  return server;
}

async function spawnMoto(port: number): Promise<{ child: ChildProcess; port: number }> {
  const missing: string[] = [];
  for (const [cmd, pre] of COMMANDS) {
    try {
      return await spawnOne(cmd, [...pre, '-H', '127.0.0.1', '-p', String(port)]);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as Error).message.includes('No module named')) {
        missing.push(cmd);
        continue;
      }
      throw e;
    }
  }
  throw new Error(`${MOTO_MISSING} (tried: ${missing.join(', ')})`);
}

/** Starts one command and waits (bounded) for werkzeug's "Running on http://127.0.0.1:PORT". */
function spawnOne(cmd: string, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    let out = '';
    let settled = false;
    const finish = (err: Error | null, port?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        child.kill('SIGKILL');
        reject(err);
      } else {
        // Keep draining its output so that a full pipe never blocks the server.
        resolve({ child, port: port! });
      }
    };
    const onData = (chunk: Buffer) => {
      if (settled) return;
      out += chunk.toString('utf8');
      const m = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) finish(null, Number(m[1]));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (e) => finish(e));
    child.once('exit', (code) => finish(Object.assign(new Error(`${cmd} exited with ${code} before it was ready: ${out.slice(-500)}`), { code: 'EXITED' })));
    const timer = setTimeout(() => finish(new Error(`${cmd} was not ready within ${READY_TIMEOUT_MS} ms: ${out.slice(-500)}`)), READY_TIMEOUT_MS);
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGCONT'); // a paused process does not act on SIGTERM until resumed
  child.kill('SIGKILL');
  await exited;
}

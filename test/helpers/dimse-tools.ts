// The dcmtk command-line tools (Debian's dcmtk 3.6.7) and socat, as real DICOM
// peers. Command lines follow ../shared/bench/CLIENTS.md: `+tls KEY CERT +cf CA`,
// TCP_NODELAY=1, and socat carrying the device certificate for getscu/movescu,
// which have no TLS of their own.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, TCP_NODELAY: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

export const tlsArgs = (c: { keyPath: string; certPath: string }, caPath: string): string[] => ['+tls', c.keyPath, c.certPath, '+cf', caPath];

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Waits until something listens on `port`, without connecting to it (/proc/net/tcp, state 0A). */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  for (;;) {
    const tables = await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map((f) => readFile(f, 'utf8').catch(() => '')));
    if (tables.join('\n').split('\n').some((l) => l.split(/\s+/)[2]?.endsWith(hex.trim()) && l.split(/\s+/)[4] === '0A')) return;
    if (Date.now() > until) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const BIND_LOOPBACK_C = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real_bind)(int, const struct sockaddr *, socklen_t);
  if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in a; memcpy(&a, addr, sizeof a);
    if (a.sin_addr.s_addr == htonl(INADDR_ANY)) { a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); return real_bind(fd, (struct sockaddr *)&a, sizeof a); }
  }
  return real_bind(fd, addr, len);
}
`;

let shim: Promise<string | undefined> | undefined;
/** ../shared/bench/bind-loopback.c: makes storescp (no bind option) listen on 127.0.0.1 only. */
function bindLoopbackShim(): Promise<string | undefined> {
  shim ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tresor-shim-'));
    await writeFile(path.join(dir, 'bind-loopback.c'), BIND_LOOPBACK_C);
    const r = await run('gcc', ['-shared', '-fPIC', '-O2', '-o', path.join(dir, 'bind-loopback.so'), path.join(dir, 'bind-loopback.c'), '-ldl']).catch(() => undefined);
    return r?.code === 0 ? path.join(dir, 'bind-loopback.so') : undefined;
  })();
  return shim;
}

export interface Background {
  port: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

function background(cmd: string, args: string[], port: number, env: Record<string, string> = {}): Background {
  let out = '';
  const child = spawn(cmd, args, { env: { ...process.env, TCP_NODELAY: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return {
    port,
    child,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('close', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** socat terminating the mutual-TLS leg for a plain-DICOM tool (CLIENTS.md). */
export async function startTlsTunnel(targetPort: number, c: { keyPath: string; certPath: string }, caPath: string): Promise<Background> {
  const port = await freePort();
  const b = background(
    'socat',
    [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,nodelay`, `OPENSSL:127.0.0.1:${targetPort},cert=${c.certPath},key=${c.keyPath},cafile=${caPath},verify=1,commonname=localhost,nodelay`],
    port,
  );
  await waitForPort(port);
  return b;
}

/** storescp with TLS, as a C-MOVE destination (it listens on all interfaces: dcmtk has no bind option). */
export async function startStoreScp(aeTitle: string, c: { keyPath: string; certPath: string }, caPath: string, outDir: string, extra: string[] = [], fixedPort?: number): Promise<Background> {
  const port = fixedPort ?? (await freePort());
  const preload = await bindLoopbackShim();
  const b = background('storescp', ['-aet', aeTitle, ...tlsArgs(c, caPath), '-od', outDir, ...extra, String(port)], port, preload ? { LD_PRELOAD: preload } : {});
  await waitForPort(port);
  return b;
}

/**
 * dcmdump of the data set only, normalized to what a DICOM-aware comparison cares
 * about: no file meta information, no trailing padding, no group lengths, and
 * sequence/item length encoding ignored (dcmtk's storescu re-encodes a file it
 * sends: defined vs undefined lengths, padding). +M +L prints binary values (pixel
 * data) in full, so those are compared byte for byte.
 * With `transcoded`, also ignore what dcmjs-dimse's transcoding changes without
 * changing the data (DS/IS number formatting) and what it drops (private
 * attributes): see src/dimse/README.md.
 */
export async function datasetDump(file: string, o: { transcoded?: boolean } = {}): Promise<string> {
  const r = await run('dcmdump', ['+M', '+L', file]);
  if (r.code !== 0) throw new Error(`dcmdump failed: ${r.stderr}`);
  const out: string[] = [];
  let skipDeeperThan = -1;
  for (const raw of r.stdout.split('\n')) {
    if (raw.startsWith('#') || raw.trim() === '') continue;
    const indent = raw.length - raw.trimStart().length;
    if (skipDeeperThan >= 0) {
      if (indent > skipDeeperThan) continue;
      skipDeeperThan = -1;
    }
    const m = /^\s*\(([0-9a-f]{4}),([0-9a-f]{4})\)\s+(\S+)\s*(.*)$/.exec(raw);
    if (!m) continue;
    const [, group, elem, vr] = m;
    let value = m[4].replace(/\s*#.*$/, '').trimEnd();
    if (group === '0002' || (group === 'fffc' && elem === 'fffc') || elem === '0000' || (group === 'fffe' && (elem === 'e00d' || elem === 'e0dd'))) continue;
    if (o.transcoded && parseInt(group, 16) % 2 === 1) {
      skipDeeperThan = indent;
      continue;
    }
    value = value.replace(/\((Sequence|Item) with (un)?defined length/, '($1').replace(/\((Sequence|Item) with explicit length/, '($1');
    if (o.transcoded && (vr === 'DS' || vr === 'IS')) value = value.replace(/\[([^\]]*)\]/, (_, v: string) => `[${v.split('\\').map((x) => String(Number(x))).join('\\')}]`);
    out.push(`${' '.repeat(indent)}(${group},${elem}) ${vr} ${value}`);
  }
  return out.join('\n');
}

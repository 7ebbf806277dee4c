// Test tools for `tresor edge`: plain dcmtk peers (no TLS: the legacy devices the edge
// is for), an LD_PRELOAD shim so that storescp listens on 127.0.0.1 only and a client
// can be made to connect from another loopback address (dcmtk has no bind options;
// same approach as ../shared/bench/bind-loopback.c), and a TCP proxy that counts the
// connections reaching Tresor, to prove that a refused association reaches nothing.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, run, waitForPort, type RunResult } from '../helpers/dimse-tools.js';
import { parseStorescuLog, samplesByTransferSyntax, TS_OPTION, type StoreOutcome } from '../helpers/dimse-samples.js';

const SHIM_C = `#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in a; memcpy(&a, addr, sizeof a);
    if (a.sin_addr.s_addr == htonl(INADDR_ANY)) { a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); return real_bind(fd, (struct sockaddr *)&a, sizeof a); }
  }
  return real_bind(fd, addr, len);
}
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (!real_connect) real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
  const char *src = getenv("EDGE_TEST_SOURCE");
  if (src && addr && addr->sa_family == AF_INET) {
    struct sockaddr_in a; memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    if (inet_pton(AF_INET, src, &a.sin_addr) == 1) real_bind(fd, (struct sockaddr *)&a, sizeof a);
  }
  return real_connect(fd, addr, len);
}
`;

let shim: Promise<string> | undefined;
export function loopbackShim(): Promise<string> {
  shim ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tresor-edge-shim-'));
    await writeFile(path.join(dir, 'shim.c'), SHIM_C);
    const r = await run('gcc', ['-shared', '-fPIC', '-O2', '-o', path.join(dir, 'shim.so'), path.join(dir, 'shim.c'), '-ldl']);
    if (r.code !== 0) throw new Error(`cannot build the loopback shim: ${r.stderr}`);
    return path.join(dir, 'shim.so');
  })();
  return shim;
}

/** A dcmtk tool run as a legacy device: plain DICOM, optionally from another loopback address. */
export async function runDevice(cmd: string, args: string[], o: { from?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const env: Record<string, string> = { LD_PRELOAD: await loopbackShim() };
  if (o.from) env.EDGE_TEST_SOURCE = o.from;
  return run(cmd, args, { env, timeoutMs: o.timeoutMs });
}

export interface PlainScp {
  port: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** The device's own storage SCP, plain, on 127.0.0.1 only. */
export async function startPlainStoreScp(aeTitle: string, outDir: string): Promise<PlainScp> {
  const port = await freePort();
  let out = '';
  const child = spawn('storescp', ['-aet', aeTitle, '-od', outDir, String(port)], { env: { ...process.env, TCP_NODELAY: '1', LD_PRELOAD: await loopbackShim() }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await waitForPort(port);
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

export interface CountingProxy {
  port: number;
  /** TCP connections accepted so far (each one would have reached Tresor). */
  connections(): number;
  close(): Promise<void>;
}

/** A TCP pass-through in front of Tresor that counts connections. */
export async function startCountingProxy(targetPort: number): Promise<CountingProxy> {
  let n = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    n++;
    const up = net.connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, up]) {
      open.add(s);
      s.setNoDelay(true);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(up).pipe(client);
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** storescu without TLS, one run per transfer syntax with the option that sends it unchanged. */
export async function storeSampleSetPlain(port: number, callingAe: string, calledAe: string): Promise<StoreOutcome[]> {
  const outcomes: StoreOutcome[] = [];
  for (const [ts, files] of samplesByTransferSyntax()) {
    const opt = TS_OPTION[ts];
    if (!opt) {
      outcomes.push(...files.map((file) => ({ file, status: 'not sent' })));
      continue;
    }
    const r = await runDevice('storescu', ['-v', '-R', '-nh', `-x${opt}`, '-aet', callingAe, '-aec', calledAe, '127.0.0.1', String(port), ...files], { timeoutMs: 120_000 });
    outcomes.push(...parseStorescuLog(r.stdout + r.stderr, files));
  }
  return outcomes.sort((a, b) => path.basename(a.file).localeCompare(path.basename(b.file)));
}

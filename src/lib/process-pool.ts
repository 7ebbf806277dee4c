// A small pool of child processes for work that must not run in the server process:
// decoding untrusted compressed pixel data (issue 14, item 1). A worker thread is not
// enough: a fatal V8 allocation failure ("invalid table size", heap OOM) inside a
// worker — or in WebAssembly memory, which worker resourceLimits do not cover — kills
// the whole process. A child that dies takes only its own job with it.
//
// What the pool guarantees:
//  - at most `size` children, each running one job at a time; at most `maxQueue` jobs
//    waiting, and none waits longer than `timeoutMs` — beyond that, PoolBusyError;
//  - a job that runs longer than `timeoutMs`, or whose child's resident memory passes
//    `maxRssBytes` (read from /proc, where there is one), kills the child: PoolTimeoutError
//    or PoolCrashError; a child that exits or crashes is replaced on the next job;
//  - children never outlive the server: each exits when its IPC channel closes, and a
//    watchdog thread inside it kills it when its parent is gone even while its main
//    thread is stuck in a decoder (see the child side, `serveChildJobs`).
// Framework-free: node built-ins only.

import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export class PoolBusyError extends Error {
  constructor() {
    super('all workers are busy');
    this.name = 'PoolBusyError';
  }
}
export class PoolTimeoutError extends Error {
  constructor(ms: number) {
    super(`job exceeded ${ms} ms`);
    this.name = 'PoolTimeoutError';
  }
}
export class PoolCrashError extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'PoolCrashError';
  }
}
/** The job itself failed in the child (the child is fine); `code` is the child's. */
export class PoolJobError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PoolJobError';
  }
}

export interface ProcessPoolOptions {
  /** Absolute path of the child's module. */
  entry: string;
  /** Node flags of the children (replace, not extend, the parent's). */
  execArgv: string[];
  /** Arguments of the child (process.argv[2…]): its settings. */
  args?: string[];
  /** A child must say it is ready (loaded, initialised) within this; its first job's time limit starts then. */
  startTimeoutMs?: number;
  size: number;
  maxQueue: number;
  timeoutMs: number;
  /** Kill a child whose resident set passes this (Linux /proc; elsewhere only the time limit holds). */
  maxRssBytes: number;
  onEvent?: (e: { event: 'spawn' | 'exit' | 'killed'; pid?: number; reason?: string; detail?: string }) => void;
}

interface Job {
  /** Builds the message once a child is free (so waiting jobs hold nothing, e.g. no object bytes). */
  make: () => Promise<Record<string, unknown>>;
  id: number;
  resolve(v: unknown): void;
  reject(e: Error): void;
  queuedAt: number;
}

interface Slot {
  child?: ChildProcess;
  /** Settles when the current child has said it is ready. */
  ready?: Promise<void>;
  busy?: { job: Job; timer: NodeJS.Timeout; memTimer?: NodeJS.Timeout; done: boolean };
  stderrTail: string;
}

const MEM_POLL_MS = 50;
const PAGE = 4096;

function rssOf(pid: number): number | undefined {
  try {
    // /proc/<pid>/statm: size resident shared … in pages.
    const resident = Number(readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ')[1]);
    return Number.isFinite(resident) ? resident * PAGE : undefined;
  } catch {
    return undefined;
  }
}

export class ProcessPool {
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private closed = false;
  private nextId = 1;

  constructor(private readonly o: ProcessPoolOptions) {
    this.slots = Array.from({ length: Math.max(1, o.size) }, () => ({ stderrTail: '' }));
  }

  /**
   * Runs one job; `make` builds its message when a child is free. The child answers
   * `{ id, ok: true, result }` or `{ id, ok: false, code, message }`.
   */
  run<T>(make: () => Promise<Record<string, unknown>>): Promise<T> {
    if (this.closed) return Promise.reject(new PoolBusyError());
    return new Promise<T>((resolve, reject) => {
      const job: Job = { make, id: this.nextId++, resolve: resolve as (v: unknown) => void, reject, queuedAt: Date.now() };
      const free = this.slots.find((s) => !s.busy);
      if (free) return this.start(free, job);
      if (this.queue.length >= this.o.maxQueue) return reject(new PoolBusyError());
      this.queue.push(job);
    });
  }

  /** Children alive now (for tests and health). */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.child?.pid && s.child.exitCode === null && s.child.signalCode === null ? [s.child.pid] : []));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new PoolBusyError());
    await Promise.all(
      this.slots.map(async (s) => {
        const c = s.child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await exited;
      }),
    );
  }

  private spawn(slot: Slot): ChildProcess {
    const child = fork(this.o.entry, this.o.args ?? [], {
      execArgv: this.o.execArgv,
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    slot.child = child;
    slot.stderrTail = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      slot.stderrTail = (slot.stderrTail + d).slice(-2000);
    });
    let readyNow: () => void = () => undefined;
    let failStart: (e: Error) => void = () => undefined;
    slot.ready = new Promise<void>((resolve, reject) => {
      readyNow = resolve;
      failStart = reject;
    });
    slot.ready.catch(() => undefined);
    child.on('message', (m: { id?: number; ok?: boolean; result?: unknown; code?: string; message?: string; retiring?: boolean; ready?: boolean }) => {
      if (m.ready) return readyNow();
      const b = slot.busy;
      if (!b || slot.child !== child || m.id !== b.job.id) return;
      // It exits once this is sent: the next job gets a fresh child.
      if (m.retiring) slot.child = undefined;
      if (m.ok) this.finish(slot, () => b.job.resolve(m.result));
      else this.finish(slot, () => b.job.reject(new PoolJobError(String(m.code ?? 'failed'), String(m.message ?? 'failed'))));
    });
    child.on('exit', (code, signal) => {
      failStart(new PoolCrashError(`worker exited before it was ready (${signal ?? `code ${code}`})`));
      if (slot.child === child) slot.child = undefined;
      const detail = slot.stderrTail.trim().split('\n').slice(-1)[0]?.slice(0, 200);
      this.o.onEvent?.({ event: 'exit', pid: child.pid, reason: signal ?? `code ${code}`, detail });
      const b = slot.busy;
      if (b && !b.done) this.finish(slot, () => b.job.reject(new PoolCrashError(`worker exited (${signal ?? `code ${code}`})`)));
    });
    child.on('error', () => undefined);
    this.o.onEvent?.({ event: 'spawn', pid: child.pid });
    return child;
  }

  private start(slot: Slot, job: Job): void {
    const child = slot.child && slot.child.exitCode === null && slot.child.signalCode === null && slot.child.connected ? slot.child : this.spawn(slot);
    const memTimer = setInterval(() => {
      const rss = child.pid ? rssOf(child.pid) : undefined;
      if (rss !== undefined && rss > this.o.maxRssBytes) this.kill(slot, child, 'memory', new PoolCrashError('worker passed its memory limit'));
    }, MEM_POLL_MS);
    // Until the child is ready, the start-up limit; then the job's own time limit.
    const startMs = this.o.startTimeoutMs ?? 30_000;
    const timer = setTimeout(() => this.kill(slot, child, 'start-timeout', new PoolCrashError('worker did not start in time')), startMs);
    const busy = { job, timer, memTimer, done: false };
    slot.busy = busy;
    const ready = slot.ready ?? Promise.resolve();
    ready
      .then(async () => {
        if (slot.busy !== busy || slot.child !== child) return undefined;
        clearTimeout(busy.timer);
        busy.timer = setTimeout(() => this.kill(slot, child, 'timeout', new PoolTimeoutError(this.o.timeoutMs)), this.o.timeoutMs);
        return job.make();
      })
      .then(
      (msg) => {
        if (!msg || slot.busy?.job !== job || slot.child !== child) return;
        try {
          child.send({ ...msg, id: job.id }, (err) => {
            if (err) this.kill(slot, child, 'send-failed', new PoolCrashError('could not hand the job to a worker'));
          });
        } catch {
          this.kill(slot, child, 'send-failed', new PoolCrashError('could not hand the job to a worker'));
        }
      },
      (err: unknown) => {
        if (slot.busy === busy) this.finish(slot, () => job.reject(err instanceof Error ? err : new Error(String(err))));
      },
    );
  }

  private kill(slot: Slot, child: ChildProcess, reason: string, err: Error): void {
    const b = slot.busy;
    if (!b || b.done || slot.child !== child) return;
    this.o.onEvent?.({ event: 'killed', pid: child.pid, reason });
    slot.child = undefined;
    child.kill('SIGKILL');
    this.finish(slot, () => b.job.reject(err));
  }

  private finish(slot: Slot, settle: () => void): void {
    const b = slot.busy;
    if (!b || b.done) return;
    b.done = true;
    clearTimeout(b.timer);
    if (b.memTimer) clearInterval(b.memTimer);
    slot.busy = undefined;
    settle();
    // Next job: drop those that waited too long (their callers get "busy, retry").
    while (this.queue.length && !slot.busy) {
      const next = this.queue.shift()!;
      if (Date.now() - next.queuedAt > this.o.timeoutMs) next.reject(new PoolBusyError());
      else this.start(slot, next);
    }
  }
}

/**
 * The child side: answers jobs with `handle`, one at a time, and makes sure the child
 * never outlives its parent — on IPC disconnect, and (from a watchdog thread, which
 * runs while the main thread is stuck in a decoder) when the parent process is gone.
 * When `retire(error)` says so after a failed job, the child exits once it has answered
 * (the pool starts a fresh one for the next job).
 */
export async function serveChildJobs(
  handle: (msg: Record<string, any>) => Promise<unknown>,
  o: { init?: () => Promise<void>; retire?: (e: unknown) => boolean } = {},
): Promise<void> {
  const retire = o.retire ?? (() => false);
  if (!process.send) throw new Error('serveChildJobs: not started by ProcessPool (no IPC channel)');
  process.on('disconnect', () => process.exit(0));
  const { Worker } = await import('node:worker_threads');
  const parent = process.ppid;
  // The thread checks the parent pid every 500 ms; if it changed (we were re-parented),
  // the parent died: kill this whole process (process.exit in a worker ends only the thread).
  const watchdog = new Worker(
    `const { workerData } = require('node:worker_threads');
     setInterval(() => { if (process.ppid !== workerData.parent) process.kill(process.pid, 'SIGKILL'); }, 500);`,
    { eval: true, workerData: { parent } },
  );
  watchdog.unref();
  process.on('message', async (m: Record<string, any>) => {
    let reply: Record<string, unknown>;
    let exit = false;
    try {
      reply = { id: m.id, ok: true, result: await handle(m) };
    } catch (e) {
      const code = typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : 'failed';
      reply = { id: m.id, ok: false, code, message: e instanceof Error ? e.message.slice(0, 300) : 'failed' };
      exit = retire(e);
      reply.retiring = exit;
    }
    process.send!(reply, () => {
      if (exit) process.exit(0);
    });
  });
  await o.init?.();
  process.send({ ready: true });
}

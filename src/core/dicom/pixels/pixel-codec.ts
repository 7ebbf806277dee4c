// THE entry point for decoding stored pixel data, by either door (issue 14, item 1):
// transcoding a whole object (WADO-RS, WADO-URI), transcoding a data set (C-GET and
// C-MOVE sub-operations), rendering a frame (rendered, thumbnail, WADO-URI image/*).
//
// Nothing decodes in the server process. Every job goes to a small pool of child
// processes (lib/process-pool.ts, child entry codec-child.ts, work in codec-jobs.ts):
//  - the size the header promises (Rows × Columns × Samples × Bits Allocated / 8 ×
//    Frames) is checked against a hard cap before anything is read, and again in the
//    child against the header the codec actually parses; every frame a decoder returns
//    is counted against it before the next one is decoded;
//  - the WebAssembly memory the codecs may grow to is lowered, each child's V8 heap is
//    limited, its resident memory is watched, and a job that runs past the time limit
//    kills its child — a crash or out-of-memory kills that child only;
//  - when every child is busy and the queue is full, the caller gets "busy, retry"
//    (HTTP 503 with Retry-After, DIMSE A700), never an unbounded wait.
// Why processes and not worker threads: a fatal V8 allocation failure inside a worker
// thread ("invalid table size", heap OOM), and WebAssembly memory, which worker
// resourceLimits do not count, take the whole process down (seen in an earlier attempt).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PoolBusyError, PoolCrashError, PoolJobError, PoolTimeoutError, ProcessPool } from '../../../lib/process-pool.js';
import { TresorError, unavailable } from '../../errors.js';
import { promisedBytes, type PixelShape } from './pixel-bounds.js';
import { MAX_RENDER_PIXELS, type RenderOptions } from './render.js';

export interface PixelCodecSettings {
  /** Child processes (TRESOR_DECODE_WORKERS). */
  workers: number;
  /** Longest a job may run, and wait in the queue (TRESOR_DECODE_TIMEOUT_MS). */
  timeoutMs: number;
  /** Most decoded pixel bytes one job may produce (TRESOR_DECODE_MAX_BYTES). */
  maxOutputBytes: number;
}

export interface PixelCodec {
  /**
   * A whole Part 10 object → Part 10 in `to` (a native syntax). `shape` (from the
   * catalogue) is checked before `load` reads anything.
   */
  transcodeObject(shape: PixelShape | undefined, load: () => Promise<Buffer>, to: string): Promise<Buffer>;
  /** A data set (after the File Meta Information) in `from` → a data set in `to`; read by `load` once a child is free. */
  transcodeDataset(shape: PixelShape | undefined, load: () => Promise<Buffer>, from: string, to: string): Promise<Buffer>;
  /** One frame (its bytes in `transferSyntaxUid`) with the attributes before Pixel Data → JPEG or PNG. */
  render(header: Record<string, any>, frame: Buffer, transferSyntaxUid: string, opts: RenderOptions): Promise<Buffer>;
  /** Whether a header's promise (pixel-bounds.ts) is within the cap; unknown shapes are left to the child's check. */
  admits(shape: PixelShape | undefined): boolean;
  /** Process ids of the live children (tests, diagnostics). */
  pids(): number[];
  close(): Promise<void>;
}

export interface PixelCodecEvent {
  event: 'spawn' | 'exit' | 'killed';
  pid?: number;
  reason?: string;
  detail?: string;
}

const MiB = 1024 * 1024;
const RETRY_AFTER_S = 5;

/** The child's module, next to this one: .js from dist/, .ts under tsx/vitest (then loaded through tsx). */
function childEntry(): { entry: string; loader: string[] } {
  const here = fileURLToPath(import.meta.url);
  const ts = here.endsWith('.ts');
  return { entry: path.join(path.dirname(here), ts ? 'codec-child.ts' : 'codec-child.js'), loader: ts ? ['--import', 'tsx'] : [] };
}

/** Memory limits of a child, from the output cap: the codecs' WebAssembly memory, the V8 heap, the whole process. */
export function childLimits(maxOutputBytes: number): { wasmMaxBytes: number; heapMiB: number; maxRssBytes: number } {
  // The module's own minimum is 256 MiB; a frame's input and output must fit beside it.
  const wasmMaxBytes = Math.min(2048 * MiB, Math.max(256 * MiB, Math.ceil((maxOutputBytes + 256 * MiB) / (64 * 1024)) * 64 * 1024));
  const heapMiB = 1024;
  // Input, decoded frames (in WebAssembly and copied out), the concatenation and the written output.
  const maxRssBytes = 4 * maxOutputBytes + wasmMaxBytes + 512 * MiB;
  return { wasmMaxBytes, heapMiB, maxRssBytes };
}

export function createPixelCodec(s: PixelCodecSettings, onEvent?: (e: PixelCodecEvent) => void): PixelCodec {
  const { entry, loader } = childEntry();
  const limits = childLimits(s.maxOutputBytes);
  const pool = new ProcessPool({
    entry,
    execArgv: [`--max-old-space-size=${limits.heapMiB}`, ...loader],
    args: [JSON.stringify({ wasmMaxBytes: limits.wasmMaxBytes, maxOutputBytes: s.maxOutputBytes })],
    size: s.workers,
    maxQueue: 4 * s.workers,
    timeoutMs: s.timeoutMs,
    maxRssBytes: limits.maxRssBytes,
    onEvent,
  });

  const checkShape = (shape: PixelShape | undefined) => {
    if (shape && promisedBytes(shape).total > s.maxOutputBytes) {
      throw tooLargeToDecode();
    }
  };
  const tooLargeToDecode = () =>
    unavailable('decode-too-large', 'This object would decode to more than the server decodes for one request; retrieve it as stored (transfer-syntax=*).');

  async function run(make: () => Promise<Record<string, unknown>>, failure: 'decode-failed' | 'render-failed'): Promise<Buffer> {
    let out: unknown;
    try {
      out = await pool.run(make);
    } catch (e) {
      if (e instanceof TresorError) throw e; // from make(): e.g. the blob store
      throw mapError(e, failure);
    }
    const u = out as Uint8Array;
    return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  }

  function mapError(e: unknown, failure: 'decode-failed' | 'render-failed'): TresorError {
    if (e instanceof PoolBusyError) {
      return new TresorError('decode-busy', 'Every image decoder is busy; try again in a few seconds.', { retryAfterSeconds: RETRY_AFTER_S, cause: e });
    }
    if (e instanceof PoolTimeoutError) return unavailable('decode-timeout', 'Decoding this object took too long (it may be damaged); retrieve it as stored (transfer-syntax=*).', e);
    if (e instanceof PoolJobError && e.code === 'too-large') return tooLargeToDecode();
    if (e instanceof PoolJobError && e.code === 'not-an-image') return unavailable('not-an-image', 'This instance has no image to render.');
    if (e instanceof PoolCrashError || e instanceof PoolJobError) {
      return failure === 'render-failed'
        ? unavailable('render-failed', 'This image could not be decoded (its pixel data may be damaged); retrieve it as stored (transfer-syntax=*).', e)
        : unavailable('decode-failed', 'This object could not be decoded (its pixel data may be damaged); retrieve it as stored (transfer-syntax=*).', e);
    }
    return unavailable('decode-failed', 'This object could not be decoded; retrieve it as stored (transfer-syntax=*).', e);
  }

  return {
    async transcodeObject(shape, load, to) {
      checkShape(shape);
      // The object is read only once a child is free: waiting requests hold nothing.
      return run(async () => ({ kind: 'transcode-object', part10: await load(), to }), 'decode-failed');
    },
    async transcodeDataset(shape, load, from, to) {
      checkShape(shape);
      return run(async () => ({ kind: 'transcode-dataset', dataset: await load(), from, to }), 'decode-failed');
    },
    async render(header, frame, transferSyntaxUid, opts) {
      const budget = { nodes: MAX_HEADER_NODES, bytes: MAX_HEADER_BINARY_BYTES };
      // Pixel data goes as `frame`; the header's own copy (deflated objects carry it) is not sent.
      const { '7FE00010': _p, '7FE00008': _f, '7FE00009': _d, ...rest } = header;
      const copied = plainCopy(rest, budget);
      // A damaged header parsed into millions of values, or into a large binary value
      // (both seen in the fuzz test): copying and cloning it over IPC would stall the
      // event loop for seconds (serialisation is synchronous in this process).
      if (budget.nodes < 0 || budget.bytes < 0) throw unavailable('render-failed', 'This image could not be decoded (its attributes are damaged); retrieve it as stored (transfer-syntax=*).');
      return run(async () => ({ kind: 'render', header: copied, frame, transferSyntaxUid, opts, maxPixels: MAX_RENDER_PIXELS }), 'render-failed');
    },
    admits: (shape) => !shape || promisedBytes(shape).total <= s.maxOutputBytes,
    pids: () => pool.pids(),
    close: () => pool.close(),
  };
}

/**
 * dcmjs dictionaries carry accessor functions (PN values, `__hasTagAccessors`), which
 * the IPC channel's structured clone refuses: copy the data only (binary values as is).
 */
const MAX_HEADER_NODES = 200_000;
/** Binary values a renderer needs (LUTs ≤ 128 KiB each, an ICC profile) stay far below this. */
const MAX_HEADER_BINARY_BYTES = 4 * 1024 * 1024;
function plainCopy(v: unknown, budget: { nodes: number; bytes: number }): unknown {
  if (--budget.nodes < 0) return undefined;
  if (v === null || typeof v !== 'object') return typeof v === 'function' ? undefined : v;
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    budget.bytes -= v.byteLength;
    return budget.bytes < 0 ? undefined : v;
  }
  if (Array.isArray(v)) {
    if (v.length > budget.nodes) {
      budget.nodes = -1;
      return undefined;
    }
    return v.map((x) => plainCopy(x, budget));
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    if (typeof x !== 'function') out[k] = plainCopy(x, budget);
  }
  return out;
}

// Reusable buffers for reading stored objects (issue 13). Every chunk read from a file
// used to be a new Buffer: its memory lives outside V8's heap, and V8 answers that much
// "external memory" (a C-GET of 0.5 MB instances allocates ~1 MB per instance) with
// full garbage collections: a 1,500-instance C-GET profile showed a mark-compact every
// ~100 ms, 1.5 s of 3.7 s of main-thread work. A sender that knows when its socket is
// done with a chunk (the write's callback) hands it back here; the next read fills it.
//
// Being reused, a chunk can be large: a 0.5 MB CT image is read in one call instead of
// five, and each call on libuv's thread pool costs ~100 µs of main-thread time on this
// machine kind (waking a worker and then the event loop), more than the copy itself.
//
// A chunk must only be given back by the one holder of it, once it is no longer used:
// whoever does not know that (a consumer that collects chunks, or passes them on)
// does not ask for these chunks (BlobStore.get's `reusableChunks`).

export const READ_CHUNK_BYTES = 1024 * 1024;
/** Chunks kept for reuse (8 MiB); more given back than this are left to the GC. */
const KEEP = 8;
/** Idle this long, the kept chunks are let go: a server at rest holds none of them. */
const IDLE_MS = 10_000;

const ours = new WeakSet<ArrayBuffer>();
const free: Buffer[] = [];
let idleTimer: NodeJS.Timeout | undefined;

/** A chunk of READ_CHUNK_BYTES (a kept one, or new); its content is arbitrary. */
export function takeReadChunk(): Buffer {
  const kept = free.pop();
  if (kept) return kept;
  const b = Buffer.allocUnsafeSlow(READ_CHUNK_BYTES);
  ours.add(b.buffer as ArrayBuffer);
  return b;
}

/**
 * Gives back the chunk that `view` (the chunk or part of it) lies in, for reuse by the
 * next read. Anything that is not a chunk of ours is ignored, so a sender may give back
 * whatever it sent; a chunk given back twice is kept once.
 */
export function giveBackReadChunk(view: Buffer): void {
  const ab = view.buffer as ArrayBuffer;
  if (!ours.has(ab) || free.length >= KEEP || free.some((b) => b.buffer === ab)) return;
  free.push(Buffer.from(ab, 0, READ_CHUNK_BYTES));
  if (idleTimer) idleTimer.refresh();
  else {
    idleTimer = setTimeout(() => {
      free.length = 0;
      idleTimer = undefined;
    }, IDLE_MS);
    idleTimer.unref();
  }
}

/** How many chunks are kept for reuse (for tests). */
export function keptReadChunks(): number {
  return free.length;
}

// A response body that gives stored objects' read chunks back (lib/read-chunks.ts) once
// the response is done with them, so that a WADO-RS retrieve reads each object into the
// same few large chunks instead of allocating new memory for every read (issue 13: new
// Buffers are memory outside V8's heap, which V8 answers with full garbage collections).
//
// Fastify sends a stream body with `body.pipe(res)` (reply.js sendStream), and a pipe
// writes without a callback: it cannot know when the socket is done with a chunk. So
// pipe() is ours: each chunk is written with `dest.write(chunk, cb)`, and the callback,
// which a Writable calls once that chunk is flushed (net: written to the kernel; TLS:
// encrypted and written; HTTP/2: sent in DATA frames), gives it back. Backpressure is the
// same as a pipe's (wait for 'drain'); Fastify's own end-of-stream handling is untouched:
// it destroys the body when the response closes, and the response when the body fails.

import { Readable, type Writable } from 'node:stream';
import { drainOrClose } from '../lib/drain.js';
import { giveBackReadChunk } from '../lib/read-chunks.js';

export class ChunkReturningBody extends Readable {
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>, highWaterMark: number) {
    super({ highWaterMark });
    this.it = source[Symbol.asyncIterator]();
  }

  override _read(): void {
    this.it.next().then(
      (r) => this.push(r.done ? null : r.value),
      (e: Error) => this.destroy(e),
    );
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    // Ends the generator (its finally blocks close what it opened).
    Promise.resolve(this.it.return?.()).then(
      () => cb(err),
      () => cb(err),
    );
  }

  override pipe<T extends NodeJS.WritableStream>(dest: T, opts?: { end?: boolean }): T {
    const out = dest as unknown as Writable;
    void (async () => {
      try {
        for await (const chunk of this) {
          if (out.destroyed) return;
          const c = chunk as Buffer;
          const more = out.write(c, (e?: Error | null) => {
            if (!e) giveBackReadChunk(c);
          });
          if (!more) await drainOrClose(out);
        }
        if (opts?.end !== false && !out.destroyed) out.end();
      } catch {
        // This body failed or was destroyed: whoever handles its end (Fastify) answers it.
      }
    })();
    return dest;
  }
}

// The first bytes of a stream, copied as they go by: a door that spools an object keeps
// them, so that the core parses the object's attributes without reading the file back
// (core/ingest.ts Spooled.head; most objects' attributes fit in the first 64 KiB).

export const SPOOL_HEAD_BYTES = 64 * 1024;

export class HeadKeeper {
  private readonly buf = Buffer.allocUnsafe(SPOOL_HEAD_BYTES);
  private n = 0;

  add(chunk: Buffer): void {
    if (this.n < this.buf.length) this.n += chunk.copy(this.buf, this.n, 0, Math.min(chunk.length, this.buf.length - this.n));
  }

  /** True once SPOOL_HEAD_BYTES are kept (nothing more will be). */
  full(): boolean {
    return this.n === this.buf.length;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.n);
  }
}

// multipart/related (RFC 2387) for DICOMweb: a streaming parser for STOW-RS
// request bodies and the small pieces of the writer used by WADO-RS responses.
//
// Parsing is delegated to Dicer as maintained inside @fastify/busboy (deps/dicer:
// the Fastify team's fork of Brian White's streaming multipart parser): a
// Boyer-Moore-Horspool boundary search over the stream, parts emitted as Readables
// with backpressure. Two things about it matter here:
//  - CVE-2022-24434 (fixed in the fork, and guarded here anyway): a part header line
//    starting with a space or tab made HeaderParser throw synchronously from write().
//    We only ever call write() when the previous write has completed, so every parse
//    step runs inside our try/catch and becomes a 400, never an uncaught exception.
//  - it silently caps part headers at 80 KiB and 2000 pairs; we lower the pairs.
//  - a part whose header block is not ended by a blank line before the next boundary
//    (`--b CRLF Content-Type: x CRLF --b--`: the CRLF before `--b` belongs to the
//    delimiter, RFC 2046 §5.1.1) is emitted as a part but never gets its 'header' event,
//    and Dicer does not count it: waiting for its headers hung the request until the
//    idle timeout (issue 14). Such a part's headers are settled as missing as soon as
//    Dicer moves on (the next part, the closing boundary, or an error): a 400.

import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import { invalid, tooLarge, TresorError } from '../../core/errors.js';
import { parseMediaType } from './accept.js';

interface DicerPart extends Readable {
  on(ev: 'header', fn: (h: Record<string, string[]>) => void): this;
  on(ev: string, fn: (...a: any[]) => void): this;
}
interface DicerInstance {
  write(chunk: Buffer, cb: (err?: Error | null) => void): boolean;
  end(): void;
  on(ev: 'part', fn: (p: DicerPart) => void): this;
  on(ev: 'finish' | 'close', fn: () => void): this;
  on(ev: 'error', fn: (e: Error) => void): this;
  removeAllListeners(): this;
  destroy?(e?: Error): void;
}
type DicerCtor = new (cfg: { boundary: string; maxHeaderPairs?: number; partHwm?: number }) => DicerInstance;
const Dicer = createRequire(import.meta.url)('@fastify/busboy/deps/dicer/lib/Dicer.js') as DicerCtor;

// RFC 2046 §5.1.1: 1–70 characters from bchars, not ending with a space.
const BOUNDARY_RE = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

export interface MultipartRequestType {
  boundary: string;
  /** The `type` parameter, lower case (e.g. application/dicom). */
  type: string | undefined;
}

/** Reads boundary and type from a multipart/related Content-Type; null when it is not one. */
export function parseMultipartContentType(contentType: string | undefined): MultipartRequestType | null {
  if (!contentType) return null;
  const m = parseMediaType(contentType);
  if (!m || m.type !== 'multipart' || m.subtype !== 'related') return null;
  const boundary = m.params['boundary'];
  if (boundary === undefined || !BOUNDARY_RE.test(boundary)) throw invalid('bad-boundary', 'The multipart boundary is missing or malformed.');
  return { boundary, type: m.params['type']?.trim().toLowerCase() };
}

export interface MultipartLimits {
  maxParts: number;
  maxTotalBytes: number;
  /** No bytes for this long → the request is given up (408). */
  idleTimeoutMs: number;
}

export interface Part {
  index: number;
  headers: Record<string, string>;
  /** Lower-cased media type of the part without parameters, or undefined. */
  mediaType: string | undefined;
  body: Readable;
}

export class MultipartError extends TresorError {}
export class IdleTimeoutError extends Error {
  constructor() {
    super('request body idle');
  }
}

/**
 * Parses `source` as multipart/related and calls `onPart` for each part, one at a
 * time (the next part waits, with backpressure, until the previous handler has
 * settled). The handler must consume or resume its part. Resolves when the closing
 * boundary has been read and every handler has settled; rejects with
 * invalid('bad-multipart'), too-large ('request-too-large' / 'too-many-parts'),
 * IdleTimeoutError, or the first error a handler throws.
 */
export function parseMultipart(source: Readable, boundary: string, limits: MultipartLimits, onPart: (p: Part) => Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const dicer = new Dicer({ boundary, maxHeaderPairs: 64, partHwm: 64 * 1024 });
    let total = 0;
    let parts = 0;
    let settled = false;
    let writing = false;
    let sourceEnded = false;
    let dicerFinished = false;
    let chain: Promise<void> = Promise.resolve();
    let pending = 0;
    let idle: NodeJS.Timeout | undefined;
    let current: DicerPart | undefined;
    /** Parts whose 'header' event has not come yet: settled as headerless when Dicer moves on. */
    const awaitingHeaders = new Set<(h: Record<string, string> | null) => void>();
    const headersMissing = () => {
      for (const settle of awaitingHeaders) settle(null);
      awaitingHeaders.clear();
    };

    const armIdle = () => {
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => fail(new IdleTimeoutError()), limits.idleTimeoutMs);
      idle.unref?.();
    };

    const cleanup = () => {
      if (idle) clearTimeout(idle);
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onSourceError);
      source.off('close', onClose);
    };

    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      cleanup();
      dicer.removeAllListeners();
      dicer.on('error', () => undefined);
      source.pause();
      // The part being handled will get no more bytes: end its consumer (ingest
      // removes its spool file) instead of leaving it waiting.
      if (current && !current.readableEnded) current.destroy(e instanceof Error ? e : new Error('multipart aborted'));
      reject(e);
    };

    const maybeDone = () => {
      if (!settled && dicerFinished && pending === 0) {
        settled = true;
        cleanup();
        chain.then(resolve, reject);
      }
    };

    dicer.on('part', (part) => {
      headersMissing();
      parts++;
      if (parts > limits.maxParts) {
        part.resume();
        fail(tooLarge('too-many-parts', `At most ${limits.maxParts} parts per request.`));
        return;
      }
      pending++;
      const index = parts - 1;
      part.on('error', () => undefined); // reported through dicer's own 'error'
      part.pause();
      const headers = new Promise<Record<string, string> | null>((res) => {
        const settle = (h: Record<string, string> | null) => {
          awaitingHeaders.delete(settle);
          res(h);
        };
        awaitingHeaders.add(settle);
        part.on('header', (h) => settle(flatten(h)));
      });
      chain = chain.then(async () => {
        try {
          if (settled && !dicerFinished) return;
          current = part;
          const h = await headers;
          if (!h) throw invalid('bad-multipart', `Part ${index + 1} ends before its headers do: end the header block with an empty line (CRLF CRLF), then the body.`);
          const ct = h['content-type'];
          const media = ct ? parseMediaType(ct) : null;
          await onPart({ index, headers: h, mediaType: media ? `${media.type}/${media.subtype}` : ct ? 'invalid' : undefined, body: part });
        } catch (e) {
          part.resume();
          fail(e);
          throw e;
        } finally {
          current = undefined;
          pending--;
          maybeDone();
        }
      });
      chain.catch(() => undefined);
    });
    dicer.on('error', (e) => {
      headersMissing();
      fail(invalid('bad-multipart', `The multipart body is malformed: ${safeMessage(e)}.`));
    });
    dicer.on('finish', () => {
      headersMissing();
      dicerFinished = true;
      maybeDone();
    });

    const onData = (chunk: Buffer) => {
      if (settled) return;
      armIdle();
      total += chunk.length;
      if (total > limits.maxTotalBytes) {
        fail(tooLarge('request-too-large', `Requests above ${limits.maxTotalBytes} bytes are not accepted.`));
        return;
      }
      // One write at a time: a parse step can then only run inside this try (CVE-2022-24434).
      source.pause();
      writing = true;
      try {
        dicer.write(chunk, (err) => {
          writing = false;
          if (err) fail(invalid('bad-multipart', 'The multipart body is malformed.'));
          else if (!settled) {
            if (sourceEnded) dicer.end();
            else source.resume();
          }
        });
      } catch {
        fail(invalid('bad-multipart', 'The multipart body is malformed.'));
      }
    };
    const onEnd = () => {
      sourceEnded = true;
      if (idle) clearTimeout(idle);
      if (!writing && !settled) {
        try {
          dicer.end();
        } catch {
          fail(invalid('bad-multipart', 'The multipart body is malformed.'));
        }
      }
    };
    const onSourceError = (e: Error) => fail(e);
    const onClose = () => {
      if (!sourceEnded) fail(new Error('client closed the request'));
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onSourceError);
    source.on('close', onClose);
    armIdle();
    source.resume();
  });
}

function flatten(h: Record<string, string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = Array.isArray(v) ? v[0] : String(v);
  return out;
}

/** dicer's messages are fixed strings; keep them short and free of request data. */
function safeMessage(e: Error): string {
  return /^[A-Za-z ]{1,80}$/.test(e.message) ? e.message.toLowerCase() : 'parse error';
}

// ---- Writing (WADO-RS responses) ----

export function newBoundary(): string {
  return `tresor-${randomBytes(16).toString('hex')}`;
}

/** The delimiter and headers that open a part; parts after the first start with CRLF (RFC 2046 §5.1.1). */
export function partHead(boundary: string, first: boolean, headers: Record<string, string>): Buffer {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return Buffer.from(`${first ? '' : '\r\n'}--${boundary}\r\n${lines}\r\n`, 'latin1');
}

export function closeDelimiter(boundary: string, anyPart: boolean): Buffer {
  return Buffer.from(`${anyPart ? '\r\n' : ''}--${boundary}--\r\n`, 'latin1');
}

/** Content-Type of a multipart/related response (RFC 2387: `type` is the root part's media type). */
export function multipartContentType(boundary: string, type: string, transferSyntax?: string): string {
  return `multipart/related; type="${type}"; boundary=${boundary}${transferSyntax ? `; transfer-syntax=${transferSyntax}` : ''}`;
}

// WADO-RS (PS3.18 §10.4): studies, series and instances as multipart/related;
// type="application/dicom" streamed from the blob store; metadata from the
// database; frames and bulk data from the stored object without loading it.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid, isTresorError, type TresorError } from '../../core/errors.js';
import { bulkValueAt, readHeaderDict } from '../../core/dicom/pixels/bulkdata.js';
import { imagePixelModule, parseFrameList } from '../../core/dicom/pixels/frame-plan.js';
import { shapeOfMetadata } from '../../core/dicom/pixels/pixel-bounds.js';
import { TS } from '../../core/dicom/transfer-syntaxes.js';
import { normalizeDicomJson } from '../../core/dicom/json-normalize.js';
import type { StoredInstance } from '../../core/retrieve.js';
import type { MediaRange } from './accept.js';
import type { DicomwebContext } from './context.js';
import { principalOf, problem } from './errors.js';
import { frameSource } from './frame-source.js';
import { chooseInstance, choosePixel, type InstanceChoice } from './negotiate.js';
import { bulkDataUrisInText, instanceUrl, withBulkDataUris } from './urls.js';
import { closeDelimiter, multipartContentType, newBoundary, partHead } from './multipart.js';
import { readAll } from '../../lib/read-all.js';
import { openerOf } from '../open-stored.js';
import { ChunkReturningBody } from '../chunk-returning-body.js';
import { oneAhead } from '../../lib/one-ahead.js';
import { acceptOf, acceptsDicomJson } from './request-accept.js';
import { retrieval, retrieveRequestOf, storedObject, type Retrieval } from './retrieval.js';

/** Bytes a multipart DICOM body reads ahead of the socket (beside the object opened ahead, lib/one-ahead.ts). */
const BODY_BUFFER = 1024 * 1024;

/** Characters per written chunk of a /metadata body. */
const METADATA_CHUNK = 64 * 1024;

type Params = { study: string; series?: string; instance?: string; frames?: string; '*'?: string };

export function registerWadoRoutes(app: FastifyInstance, ctx: DicomwebContext): void {
  // ---- Study, series, instance (PS3.18 §10.4.1.1.1) ----
  const retrieveDicom = async (request: FastifyRequest, reply: FastifyReply) => {
    const ranges = acceptOf(request, reply);
    if (!ranges) return reply;
    const p = principalOf(request);
    const params = request.params as Params;
    return retrieval(ctx, p, params, 'instances', async (r) => {
    let rows = await r.list(retrieveRequestOf(params));
    const choices: InstanceChoice[] = [];
    for (const row of rows) {
      const c = chooseInstance(ranges, row.transferSyntaxUid, row.size);
      if (!c) {
        r.failed('not-acceptable');
        return problem(reply, 406, 'not-acceptable', 'An instance is not available in an acceptable transfer syntax; transfer-syntax=* returns it as stored.');
      }
      choices.push(c);
    }
    const transcoded = choices.filter((c) => c.mode === 'transcode').length;
    if (transcoded > 0) {
      // Every instance's promise (Rows × Columns × Samples × Bits × Frames, from the
      // catalogue: a few attributes per row, no object read) is checked before the first
      // byte: one instance that would decode past the cap refuses the whole request with
      // 406 (PS3.18 §8.3.5: the representation cannot be produced), rather than a
      // response cut off after the instances before it (issue 14).
      const shapes = new Map((await r.list(retrieveRequestOf(params), { withPixelShape: true })).map((x) => [x.sopInstanceUid, x.metadata]));
      rows = rows.map((row) => ({ ...row, metadata: shapes.get(row.sopInstanceUid) ?? row.metadata }));
      const over = rows.findIndex((row, i) => choices[i].mode === 'transcode' && !ctx.deps.pixels.admits(shapeOfMetadata(row.metadata)));
      if (over >= 0) {
        r.failed('decode-too-large');
        r.note({ instances: rows.length, refusedInstance: rows[over].sopInstanceUid });
        return problem(reply, 406, 'decode-too-large', `Instance ${rows[over].sopInstanceUid} would decode to more than the server decodes for one request; retrieve the ${rows.length > 1 ? 'instances' : 'instance'} as stored (transfer-syntax=*).`);
      }
    }
    // The first instance, when it is to be transcoded, is done before answering, so a codec
    // failure there is still a 406 with the reason (decode-failed, decode-too-large,
    // decode-timeout). Decoding runs in a codec child process under its limits
    // (core/dicom/pixels/pixel-codec.ts); "busy" is a 503 with Retry-After.
    let ready: Buffer | undefined;
    const transcode = (row: StoredInstance) => ctx.deps.pixels.transcodeObject(shapeOfMetadata(row.metadata), async () => readAll(await r.open(row)), TS.explicitLittle);
    if (choices[0]?.mode === 'transcode') {
      try {
        ready = await transcode(rows[0]);
      } catch (e) {
        if (!isDecodeRefusal(e)) throw e;
        r.failed(e.reason);
        return problem(reply, 406, e.reason, e.message);
      }
    }
    // Open the first object before answering: a blob missing behind its row is then a
    // clean 503, not a 200 cut short (later ones can only cut the response).
    // The body gives each read chunk back once the response has sent it (ChunkReturningBody).
    const open = openerOf(r, request.log, { reusableChunks: true });
    const first: Readable | undefined = choices[0]?.mode === 'stored' ? await open(rows[0]) : undefined;
    // The next stored part's object is opened, and read(0) fills its buffer, while this part is sent.
    const objects = oneAhead(rows, {
      prepare: (row) => open(row).then((s) => (s.read(0), s)),
      release: (s) => s.destroy(),
      wanted: (i) => choices[i].mode === 'stored',
      first,
    });

    const boundary = newBoundary();
    const head = (i: number, first: boolean, length?: number) =>
      partHead(boundary, first, {
        'Content-Type': `application/dicom; transfer-syntax=${choices[i].ts}`,
        ...(length !== undefined ? { 'Content-Length': String(length) } : {}),
      });
    if (transcoded === 0 || (rows.length === 1 && ready)) {
      const sizes = rows.map((row, i) => (i === 0 && ready ? ready.length : row.size));
      const total = sizes.reduce((n, size, i) => n + head(i, i === 0, size).length + size, 0) + closeDelimiter(boundary, rows.length > 0).length;
      reply.header('content-length', String(total));
    }
    // A later instance whose decoding fails in the child (its promise was within the cap)
    // is discovered after the status line: it is left out, the multipart stays well formed
    // (its part is never opened; the closing delimiter follows the last part sent) and the
    // retrieve's audit row names it. PS3.18 §10.4 has no way to say so after the headers
    // (no trailers for multipart/related); the client sees fewer parts than it asked for,
    // the partial success C-GET reports with its sub-operation counts (PS3.4 C.4.3).
    const omitted: { sopInstanceUid: string; reason: string }[] = [];
    let omittedCount = 0;
    let parts = 0;
    async function* body(): AsyncGenerator<Buffer> {
      try {
        yield* storedParts();
      } finally {
        objects.close();
      }
    }
    async function* storedParts(): AsyncGenerator<Buffer> {
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        if (i === 0 && ready) {
          yield head(i, parts++ === 0, ready.length);
          yield ready;
          ready = undefined;
        } else if (choices[i].mode === 'stored') {
          yield head(i, parts++ === 0, row.size);
          let n = 0;
          const stream = await objects.take(i);
          for await (const chunk of stream) {
            n += (chunk as Buffer).length;
            yield chunk as Buffer;
          }
          // A blob shorter or longer than its row: cut the response rather than send a wrong object.
          if (n !== row.size) throw new Error('stored object size differs from the index');
        } else {
          let out: Buffer;
          try {
            out = await transcode(row);
          } catch (e) {
            if (!isDecodeRefusal(e)) throw e;
            // (The audit row lists the first 100; `omittedCount` says how many.)
            if (omitted.length < 100) omitted.push({ sopInstanceUid: row.sopInstanceUid, reason: e.reason });
            omittedCount++;
            request.log.warn({ reason: e.reason, instance: i + 1, of: rows.length }, 'WADO-RS: an instance could not be transcoded and is left out of the multipart response');
            continue;
          }
          yield head(i, parts++ === 0);
          yield out;
        }
      }
      yield closeDelimiter(boundary, parts > 0);
    }
    // Bytes, not objects: the buffer ahead of the socket is counted in bytes.
    const stream = new ChunkReturningBody(body(), BODY_BUFFER);
    reply.code(200).header('content-type', multipartContentType(boundary, 'application/dicom')).send(stream);
    if (transcoded > 0 && rows.length > 1) {
      // The audit row is written when this function returns: wait for the body, so the row
      // says what was delivered (instances left out, or the client going away).
      await finished(reply.raw).catch(() => r.note({ aborted: true }));
    }
    r.note({ instances: rows.length, transcoded, ...(omittedCount ? { sent: parts, omitted, omittedCount } : {}) });
    if (omittedCount) r.failed('instances-not-transcoded');
    // Already sent: nothing for Fastify to send (returning the reply would make it warn).
    return transcoded > 0 && rows.length > 1 ? undefined : reply;
    });
  };
  app.get('/studies/:study', retrieveDicom);
  app.get('/studies/:study/series/:series', retrieveDicom);
  app.get('/studies/:study/series/:series/instances/:instance', retrieveDicom);

  // ---- Metadata (PS3.18 §10.4.1.1.2), from the database, with ETag ----
  const metadata = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!acceptsDicomJson(request, reply)) return reply;
    const p = principalOf(request);
    const params = request.params as Params;
    return retrieval(ctx, p, params, 'metadata', async (r) => {
    // One list for the ETag and the body: the stored text of each instance (migration 006).
    const rows = await r.list(retrieveRequestOf(params), { withMetadataText: true });
    // Instances are immutable (a SOP Instance UID is stored once, with one sha256):
    // the list of (UID, hash) and the link base identify the representation.
    // "f3": the rendering's revision (f2: PS3.18 F.2; f3: served from the text stored at
    // ingest), so caches of an earlier rendering are not revalidated.
    const h = createHash('sha256').update(`f3\n${ctx.urls.publicUrl ?? ''}${ctx.urls.prefix}\n`);
    for (const r of rows) h.update(`${r.seriesUid}/${r.sopInstanceUid}:${r.sha256}\n`);
    const etag = `"${h.digest('base64url')}"`;
    reply.header('etag', etag).header('cache-control', 'private, no-cache').header('vary', 'Authorization, Accept');
    if (matchesIfNoneMatch(request.headers['if-none-match'], etag)) {
      r.note({ instances: rows.length, notModified: true });
      return reply.code(304).send();
    }
    r.note({ instances: rows.length });
    const text = (r: StoredInstance): string => {
      const base = instanceUrl(ctx.urls, r.studyUid, r.seriesUid, r.sopInstanceUid);
      if (r.metadataText !== undefined) return bulkDataUrisInText(r.metadataText, base);
      // A row stored without the text: PS3.18 F.2 also for rows stored before ingest normalized (json-normalize.ts).
      return JSON.stringify(withBulkDataUris(normalizeDicomJson(r.metadata), base));
    };
    // Chunks of about 64 KiB: one write per instance would be a thousand small writes.
    function* body(): Generator<string> {
      let chunk = '[';
      for (let i = 0; i < rows.length; i++) {
        chunk += (i ? ',' : '') + text(rows[i]);
        if (chunk.length >= METADATA_CHUNK) {
          yield chunk;
          chunk = '';
        }
      }
      yield chunk + ']';
    }
    return reply.code(200).header('content-type', 'application/dicom+json').send(Readable.from(body()));
    });
  };
  app.get('/studies/:study/metadata', metadata);
  app.get('/studies/:study/series/:series/metadata', metadata);
  app.get('/studies/:study/series/:series/instances/:instance/metadata', metadata);

  // ---- Frames (PS3.18 §10.4.1.1.4) ----
  app.get('/studies/:study/series/:series/instances/:instance/frames/:frames', async (request, reply) => {
    const params = request.params as Params;
    const frames = parseFrameList(params.frames ?? '');
    const ranges = acceptOf(request, reply);
    if (!ranges) return reply;
    const p = principalOf(request);
    return retrieval(ctx, p, params, 'frames', async (r) => {
      const [row] = await r.list(retrieveRequestOf(params), { withMetadata: true });
      return sendPixels(r, reply, row, ranges, frames);
    });
  });

  // ---- Bulk data (PS3.18 §10.4.1.1.5): …/bulkdata/<tag>[/<item>/<tag>]… ----
  app.get('/studies/:study/series/:series/instances/:instance/bulkdata/*', async (request, reply) => {
    const params = request.params as Params;
    const path = (params['*'] ?? '').split('/');
    if (path.length % 2 !== 1 || path.length > 13 || path.some((s, i) => (i % 2 === 0 ? !/^[0-9A-Fa-f]{8}$/.test(s) : !/^\d{1,6}$/.test(s)))) {
      throw invalid('bad-bulkdata-path', 'A bulk data path is tags separated by item numbers.');
    }
    const tagPath = path.map((s) => s.toUpperCase());
    const ranges = acceptOf(request, reply);
    if (!ranges) return reply;
    const p = principalOf(request);
    return retrieval(ctx, p, params, 'bulkdata', async (r) => {
    const [row] = await r.list(retrieveRequestOf(params), { withMetadata: true });
    if (tagPath.length === 1 && tagPath[0] === '7FE00010') {
      const m = imagePixelModule(row.metadata);
      const all = Array.from({ length: m.numberOfFrames }, (_, i) => i + 1);
      return sendPixels(r, reply, row, ranges, all);
    }
    if (!ranges.some((r) => (r.type === '*' || r.type === 'application' || r.type === 'multipart') && (r.subtype === '*' || r.subtype === 'octet-stream' || r.subtype === 'related'))) {
      r.failed('not-acceptable');
      return problem(reply, 406, 'not-acceptable', 'Bulk data is available as application/octet-stream.');
    }
    const o = storedObject(r, row);
    const { dict } = await readHeaderDict(o);
    const value = bulkValueAt(dict, tagPath);
    r.note({ bytes: value.length });
    const single = ranges.some((r) => r.type === 'application' && r.subtype === 'octet-stream') && !ranges.some((r) => r.type === 'multipart');
    if (single) return reply.code(200).header('content-type', 'application/octet-stream').send(value);
    const boundary = newBoundary();
    const head = partHead(boundary, true, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(value.length) });
    return reply
      .code(200)
      .header('content-type', multipartContentType(boundary, 'application/octet-stream'))
      .send(Buffer.concat([head, value, closeDelimiter(boundary, true)]));
    });
  });
}

/** A codec's refusal of one object (not "busy", not an infrastructure error): the object's own fault. */
function isDecodeRefusal(e: unknown): e is TresorError {
  return isTresorError(e) && e.kind === 'unavailable' && e.reason !== 'decode-busy' && e.reason.startsWith('decode-');
}

function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** Frames or pixel bulk data of one instance, as negotiated, streamed part by part. */
async function sendPixels(r: Retrieval, reply: FastifyReply, row: StoredInstance, ranges: MediaRange[], frames: number[]) {
  const choice = choosePixel(ranges, row.transferSyntaxUid, frames.length === 1);
  if (!choice) {
    r.failed('not-acceptable');
    return problem(reply, 406, 'not-acceptable', 'The pixel data is not available in an acceptable media type; transfer-syntax=* returns it as stored.');
  }
  // Plan everything (and fail with 404 for absent frames) before the first byte goes out.
  const src = await frameSource(storedObject(r, row), row, frames);
  const lengths = src.lengths;
  const source = () => src.frames();
  r.note({ frames: frames.length });

  if (!choice.multipart) {
    reply.code(200).header('content-type', choice.contentType).header('content-length', String(lengths[0]));
    return reply.send(
      Readable.from(
        (async function* () {
          for await (const f of source()) yield* f.chunks;
        })(),
      ),
    );
  }
  const boundary = newBoundary();
  const heads = lengths.map((length, i) => partHead(boundary, i === 0, { 'Content-Type': choice.contentType, 'Content-Length': String(length) }));
  const close = closeDelimiter(boundary, lengths.length > 0);
  reply.header('content-length', String(heads.reduce((n, h) => n + h.length, 0) + lengths.reduce((n, l) => n + l, 0) + close.length));
  async function* body(): AsyncGenerator<Buffer> {
    let i = 0;
    for await (const f of source()) {
      yield heads[i++];
      let n = 0;
      for await (const c of f.chunks) {
        n += c.length;
        yield c;
      }
      // Never send a part of another length than announced.
      if (n !== f.length) throw new Error('frame length differs from its plan');
    }
    yield close;
  }
  return reply.code(200).header('content-type', multipartContentType(boundary, choice.mediaType)).send(Readable.from(body()));
}

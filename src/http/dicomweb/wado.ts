// WADO-RS (PS3.18 §10.4): studies, series and instances as multipart/related;
// type="application/dicom" streamed from the blob store; metadata from the
// database; frames and bulk data from the stored object without loading it.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid, isTresorError } from '../../core/errors.js';
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
import { instanceUrl, withBulkDataUris } from './urls.js';
import { closeDelimiter, multipartContentType, newBoundary, partHead } from './multipart.js';
import { readAll } from '../../lib/read-all.js';
import { openerOf } from '../open-stored.js';
import { acceptOf, acceptsDicomJson } from './request-accept.js';
import { retrieval, retrieveRequestOf, storedObject, type Retrieval } from './retrieval.js';

type Params = { study: string; series?: string; instance?: string; frames?: string; '*'?: string };

export function registerWadoRoutes(app: FastifyInstance, ctx: DicomwebContext): void {
  // ---- Study, series, instance (PS3.18 §10.4.1.1.1) ----
  const retrieveDicom = async (request: FastifyRequest, reply: FastifyReply) => {
    const ranges = acceptOf(request, reply);
    if (!ranges) return reply;
    const p = principalOf(request);
    const params = request.params as Params;
    return retrieval(ctx, p, params, 'instances', async (r) => {
    const rows = await r.list(retrieveRequestOf(params));
    const choices: InstanceChoice[] = [];
    for (const row of rows) {
      const c = chooseInstance(ranges, row.transferSyntaxUid, row.size);
      if (!c) {
        r.failed('not-acceptable');
        return problem(reply, 406, 'not-acceptable', 'An instance is not available in an acceptable transfer syntax; transfer-syntax=* returns it as stored.');
      }
      choices.push(c);
    }
    // One instance to transcode: do it before answering, so a codec failure is still a 406
    // (with the reason: decode-failed, decode-too-large, decode-timeout). Decoding runs in
    // a codec child process under its limits (core/dicom/pixels/pixel-codec.ts); "busy"
    // is a 503 with Retry-After.
    let ready: Buffer | undefined;
    const transcode = (row: StoredInstance) => ctx.deps.pixels.transcodeObject(shapeOfMetadata(row.metadata), async () => readAll(await r.open(row)), TS.explicitLittle);
    if (rows.length === 1 && choices[0].mode === 'transcode') {
      try {
        ready = await transcode(rows[0]);
      } catch (e) {
        if (!isTresorError(e) || e.reason === 'decode-busy' || e.kind !== 'unavailable' || !e.reason.startsWith('decode-')) throw e;
        r.failed(e.reason);
        return problem(reply, 406, e.reason, e.message);
      }
    }
    // Open the first object before answering: a blob missing behind its row is then a
    // clean 503, not a 200 cut short (later ones can only cut the response).
    const open = openerOf(r, request.log);
    let first: Readable | undefined = !ready && choices[0]?.mode === 'stored' ? await open(rows[0]) : undefined;
    r.note({ instances: rows.length, transcoded: choices.filter((c) => c.mode === 'transcode').length });

    const boundary = newBoundary();
    const heads = rows.map((r, i) =>
      partHead(boundary, i === 0, {
        'Content-Type': `application/dicom; transfer-syntax=${choices[i].ts}`,
        ...(choices[i].mode === 'stored' ? { 'Content-Length': String(r.size) } : ready ? { 'Content-Length': String(ready.length) } : {}),
      }),
    );
    const close = closeDelimiter(boundary, rows.length > 0);
    if (choices.every((c) => c.mode === 'stored') || ready) {
      const total = heads.reduce((n, h) => n + h.length, 0) + rows.reduce((n, r) => n + r.size, 0) - (ready ? rows[0].size - ready.length : 0) + close.length;
      reply.header('content-length', String(total));
    }
    async function* body(): AsyncGenerator<Buffer> {
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        if (ready) {
          yield heads[i];
          yield ready;
        } else if (choices[i].mode === 'stored') {
          yield heads[i];
          let n = 0;
          const stream = first ?? (await open(row));
          first = undefined;
          for await (const chunk of stream) {
            n += (chunk as Buffer).length;
            yield chunk as Buffer;
          }
          // A blob shorter or longer than its row: cut the response rather than send a wrong object.
          if (n !== row.size) throw new Error('stored object size differs from the index');
        } else {
          const out = await transcode(row);
          yield heads[i];
          yield out;
        }
      }
      yield close;
    }
    return reply.code(200).header('content-type', multipartContentType(boundary, 'application/dicom')).send(Readable.from(body()));
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
    const index = await r.list(retrieveRequestOf(params));
    // Instances are immutable (a SOP Instance UID is stored once, with one sha256):
    // the list of (UID, hash) and the link base identify the representation.
    // "f2": the JSON rendering's revision, so caches of the pre-F.2 rendering are not revalidated.
    const h = createHash('sha256').update(`f2\n${ctx.urls.publicUrl ?? ''}${ctx.urls.prefix}\n`);
    for (const r of index) h.update(`${r.seriesUid}/${r.sopInstanceUid}:${r.sha256}\n`);
    const etag = `"${h.digest('base64url')}"`;
    reply.header('etag', etag).header('cache-control', 'private, no-cache').header('vary', 'Authorization, Accept');
    if (matchesIfNoneMatch(request.headers['if-none-match'], etag)) {
      r.note({ instances: index.length, notModified: true });
      return reply.code(304).send();
    }
    const rows = await r.list(retrieveRequestOf(params), { withMetadata: true });
    r.note({ instances: rows.length });
    async function* body(): AsyncGenerator<string> {
      yield '[';
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i];
        // PS3.18 F.2 also for rows stored before ingest normalized (json-normalize.ts).
        yield (i ? ',' : '') + JSON.stringify(withBulkDataUris(normalizeDicomJson(r.metadata), instanceUrl(ctx.urls, r.studyUid, r.seriesUid, r.sopInstanceUid)));
      }
      yield ']';
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

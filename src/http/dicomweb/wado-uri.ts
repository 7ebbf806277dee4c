// WADO-URI (PS3.18 §9): GET ?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…
// with contentType application/dicom (the stored object, or transcoded to the
// transferSyntax asked for) or image/jpeg (rendered; frameNumber, rows, columns,
// windowCenter, windowWidth, imageQuality). Served at the plugin root (where
// dicomweb-client's buildInstanceWadoURIUrl points) and at /wado.

import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid } from '../../core/errors.js';
import { shapeOfMetadata } from '../../core/dicom/pixels/pixel-bounds.js';
import { TS } from '../../core/dicom/transfer-syntaxes.js';
import { isTresorError } from '../../core/errors.js';
import { isValidUid } from '../../core/dicom/uids.js';
import { parseQuality, type RenderOptions } from '../../core/dicom/pixels/render.js';
import { parseAccept } from './accept.js';
import { principalOf, problem } from './errors.js';
import { chooseUriInstance } from './negotiate.js';
import type { DicomwebContext } from './context.js';
import { chooseImageFormat, renderInstanceFrame } from './render-frame.js';
import { retrieval, retrieveRequestOf } from './retrieval.js';

const one = (q: Record<string, unknown>, name: string): string | undefined => {
  const v = q[name];
  if (Array.isArray(v)) throw invalid('repeated-parameter', `${name} may be given only once.`);
  return v === undefined ? undefined : String(v);
};

function positiveInt(v: string | undefined, name: 'rows' | 'columns' | 'frameNumber', max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1 || Number(v) > max) throw invalid(`bad-${name}`, `${name} must be an integer from 1 to ${max}.`);
  return Number(v);
}

function num(v: string | undefined, name: 'windowCenter' | 'windowWidth'): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw invalid(`bad-${name}`, `${name} must be a number.`);
  return n;
}

export function registerWadoUriRoutes(app: FastifyInstance, ctx: DicomwebContext): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const q = (request.query ?? {}) as Record<string, unknown>;
    if (one(q, 'requestType') !== 'WADO') throw invalid('bad-request-type', 'requestType must be WADO.');
    const study = one(q, 'studyUID');
    const series = one(q, 'seriesUID');
    const instance = one(q, 'objectUID');
    if (!isValidUid(study) || !isValidUid(series) || !isValidUid(instance)) throw invalid('invalid-uid', 'studyUID, seriesUID and objectUID are required UIDs.');
    // contentType is a list of media types in order of preference (PS3.18 §9.4.1.2).
    const contentType = one(q, 'contentType');
    let wanted: 'dicom' | 'jpeg' | 'png' | null;
    if (contentType === undefined) wanted = 'jpeg';
    else {
      let ranges;
      try {
        ranges = parseAccept(contentType);
      } catch {
        throw invalid('bad-content-type', 'contentType is malformed.');
      }
      const dicom = ranges.findIndex((r) => r.type === 'application' && r.subtype === 'dicom');
      const image = chooseImageFormat(ranges.filter((r) => r.type === 'image'));
      wanted = dicom === 0 || (dicom > 0 && !image) ? 'dicom' : image;
    }
    if (!wanted) return problem(reply, 406, 'not-acceptable', 'WADO-URI serves application/dicom, image/jpeg and image/png.');
    const transferSyntax = one(q, 'transferSyntax');
    if (transferSyntax !== undefined && transferSyntax !== '*' && !isValidUid(transferSyntax)) throw invalid('bad-transfer-syntax', 'transferSyntax must be a UID.');
    if (wanted !== 'dicom' && transferSyntax !== undefined && transferSyntax !== '*') throw invalid('bad-transfer-syntax', 'transferSyntax applies to application/dicom only.');
    const opts: RenderOptions = { format: wanted === 'png' ? 'png' : 'jpeg', quality: parseQuality(one(q, 'imageQuality')) };
    const rows = positiveInt(one(q, 'rows'), 'rows', 4096);
    const columns = positiveInt(one(q, 'columns'), 'columns', 4096);
    if (rows || columns) opts.viewport = { width: columns ?? 4096, height: rows ?? 4096 };
    const wc = num(one(q, 'windowCenter'), 'windowCenter');
    const ww = num(one(q, 'windowWidth'), 'windowWidth');
    if ((wc === undefined) !== (ww === undefined) || (ww !== undefined && ww <= 0)) throw invalid('bad-window', 'windowCenter and windowWidth go together; the width is positive.');
    if (wc !== undefined && ww !== undefined) opts.window = { center: wc, width: ww };
    const frame = positiveInt(one(q, 'frameNumber'), 'frameNumber', 1_000_000) ?? 1;

    const p = principalOf(request);
    const params = { study, series, instance };
    if (wanted === 'dicom') {
      return retrieval(ctx, p, params, 'wado-uri', async (r) => {
        const [row] = await r.list(retrieveRequestOf(params));
        const choice = chooseUriInstance(transferSyntax, row.transferSyntaxUid, row.size);
        if (!choice) {
          r.failed('not-acceptable');
          return problem(reply, 406, 'not-acceptable', 'The object is not available in that transfer syntax; transferSyntax=* returns it as stored.');
        }
        if (choice.mode === 'transcode') {
          let out: Buffer;
          try {
            // In a codec child process, under its limits (core/dicom/pixels/pixel-codec.ts).
            out = await ctx.deps.pixels.transcodeObject(
              shapeOfMetadata(row.metadata),
              async () => {
                const chunks: Buffer[] = [];
                for await (const c of await r.open(row)) chunks.push(c as Buffer);
                return Buffer.concat(chunks);
              },
              TS.explicitLittle,
            );
          } catch (e) {
            if (!isTresorError(e) || e.reason === 'decode-busy' || !e.reason.startsWith('decode-')) throw e;
            r.failed(e.reason);
            return problem(reply, 406, e.reason, e.message.replace('transfer-syntax=*', 'transferSyntax=*'));
          }
          r.note({ transcoded: true });
          return reply.code(200).header('content-type', 'application/dicom').header('content-length', String(out.length)).send(out);
        }
        const stream: Readable = await r.open(row);
        return reply.code(200).header('content-type', 'application/dicom').header('content-length', String(row.size)).send(stream);
      });
    }
    const image = await retrieval(ctx, p, params, 'wado-uri', async (r) => {
      const [row] = await r.list(retrieveRequestOf(params), { withMetadata: true });
      r.note({ frame });
      return renderInstanceFrame(ctx.deps.pixels, r, row, frame, opts);
    });
    return reply.code(200).header('content-type', `image/${opts.format}`).send(image);
  };
  const config = { uidQuery: true } as Record<string, unknown>;
  app.get('/', { config }, handler);
  app.get('/wado', { config }, handler);
}

// STOW-RS (PS3.18 §10.5): POST /studies and /studies/{study} with
// multipart/related; type="application/dicom". The body is parsed as a stream
// (http/dicomweb/multipart.ts) and each part streamed into ingest, which spools, validates,
// stores and audits it; nothing here holds a whole part in memory.
//
// Limits: Content-Length or bytes read above limits.maxRequestBytes, more parts than
// limits.maxParts, or a part above limits.maxObjectBytes stop the request with 413;
// a body that stalls for stowIdleTimeoutMs gets 408. Parts fully received before a
// limit was hit stay stored (each is complete and valid) and are named in the audit
// trail; a part cut short is never stored. An error answer that leaves request bytes
// unread ends the connection shortly after (dicomweb/routes.ts, lingerThenClose).

import { once } from 'node:events';
import { Transform } from 'node:stream';
import dcmjs from '../../core/dicom/dcmjs.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid, isTresorError, tooLarge, TresorError } from '../../core/errors.js';
import { DEPARTMENT_RE } from '../../core/identity/names.js';
import type { IngestTransfer } from '../../core/ingest.js';
import { principalOf, problem } from './errors.js';
import { failureOf, FAILURE, stowHeaders, stowResponse, stowStatus, WARNING_COERCED, type PartOutcome } from './stow-response.js';
import { instanceUrl, studyUrl } from './urls.js';
import { IdleTimeoutError, parseMultipart, parseMultipartContentType, type Part } from './multipart.js';
import type { DicomwebContext } from './context.js';
import { acceptsDicomJson } from './request-accept.js';

/** Parts of one request parsed and stored at once (each holds a spool file and a database turn). */
const STOW_PARALLEL_PARTS = 4;

/** Bytes of each part kept to name it in a failure report. */
const PEEK_BYTES = 1024 * 1024;

interface Peeked {
  studyUid?: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
}

/** Reads the UIDs from the first bytes of a part; partial input is fine (dcmjs stops where it must). */
function peekUids(prefix: Buffer): Peeked {
  try {
    const ab = prefix.buffer.slice(prefix.byteOffset, prefix.byteOffset + prefix.byteLength) as ArrayBuffer;
    const d = dcmjs.data.DicomMessage.readFile(ab, { ignoreErrors: true } as any);
    const s = (tag: string) => {
      const v = d.dict?.[tag]?.Value?.[0];
      return typeof v === 'string' && /^[0-9.]{1,64}$/.test(v.replace(/\0/g, '').trim()) ? v.replace(/\0/g, '').trim() : undefined;
    };
    return { studyUid: s('0020000D'), sopClassUid: s('00080016'), sopInstanceUid: s('00080018') };
  } catch {
    return {};
  }
}

export function registerStowRoutes(app: FastifyInstance, ctx: DicomwebContext): void {
  const { limits } = ctx.deps.config;
  const idleTimeoutMs = ctx.deps.stowIdleTimeoutMs ?? 30_000;

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as { study?: string };
    const refuse = (status: number, reason: string, message: string) => problem(reply, status, reason, message);

    let mt;
    try {
      mt = parseMultipartContentType(request.headers['content-type']);
    } catch (e) {
      if (isTresorError(e)) return refuse(400, e.reason, e.message);
      throw e;
    }
    if (!mt || (mt.type !== undefined && mt.type !== 'application/dicom')) {
      return refuse(415, 'unsupported-media-type', 'STOW-RS takes multipart/related; type="application/dicom".');
    }
    if (!acceptsDicomJson(request, reply)) return reply;
    const declared = Number(request.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limits.maxRequestBytes) {
      return refuse(413, 'request-too-large', `Requests above ${limits.maxRequestBytes} bytes are not accepted.`);
    }
    const p = principalOf(request);
    // Which department a new study goes to, for writers in several (ingest decides whether they may).
    const dept = (request.query as Record<string, unknown>)?.department;
    let departmentId: number | undefined;
    if (dept !== undefined) {
      if (typeof dept !== 'string' || !DEPARTMENT_RE.test(dept)) return refuse(400, 'bad-department', 'department is a department name or id.');
      const id = /^\d{1,9}$/.test(dept) ? Number(dept) : await ctx.deps.departmentByName?.(dept);
      if (id === undefined || id === null) return refuse(400, 'unknown-department', 'No such department.');
      departmentId = id;
    }
    // In request order, whatever order the parts finish in (PS3.18 §10.5.3 lists them as sent).
    const slots: (PartOutcome | undefined)[] = [];
    // The request is one transfer, audited once by the core (PS3.15 A.5.3.10), before the answer goes out.
    const transfer = ctx.deps.ingest.openTransfer(p, { via: 'dicomweb', details: params.study ? { studyUid: params.study } : {} });
    // Parts are read from the body one after the other (each spooled to a file), but up to
    // STOW_PARALLEL_PARTS of them are parsed and stored at once: the fsync, the database
    // round trips of one overlap the reading and parsing of the next (issue 13).
    const inFlight = new Set<Promise<void>>();
    let lateError: unknown;
    const settle = async () => {
      while (inFlight.size) await Promise.all(inFlight);
      if (lateError !== undefined) throw lateError;
    };

    const storePart = async (part: Part): Promise<void> => {
      const i = slots.push(undefined) - 1;
      if (part.mediaType !== 'application/dicom') {
        part.body.resume();
        await once(part.body, 'end').catch(() => undefined);
        slots[i] = { ok: false, reason: FAILURE.cannotUnderstand, conflict: false };
        transfer.refused('not-dicom-part');
        return;
      }
      while (inFlight.size >= STOW_PARALLEL_PARTS) await Promise.race(inFlight);
      let spooled = false;
      let onSpooled!: () => void;
      const spooledNow = new Promise<void>((r) => (onSpooled = r));
      const work = storeOne(ctx, transfer, part, params.study, departmentId, () => {
        spooled = true;
        onSpooled();
      }).then((o) => {
        slots[i] = o;
      });
      // An error while the part is still being read ends the request, as before; one
      // after (the part's bytes are all in) is kept and thrown once the others are done.
      const tracked = work.catch((e: unknown) => {
        if (!spooled) throw e;
        lateError ??= e;
      });
      const held: Promise<void> = tracked.catch(() => undefined).finally(() => inFlight.delete(held));
      inFlight.add(held);
      await Promise.race([spooledNow, tracked]);
    };

    try {
      await parseMultipart(request.raw, mt.boundary, { maxParts: limits.maxParts, maxTotalBytes: limits.maxRequestBytes, idleTimeoutMs }, storePart);
      await settle();
    } catch (e) {
      // Parts already handed to ingest finish first: they are stored (or not) and audited.
      await settle().catch(() => undefined);
      const outcomes = slots.filter((o): o is PartOutcome => o !== undefined);
      await transfer.end({ ended: 'request-failed' });
      const stored = outcomes.filter((o) => o.ok).length;
      const note = stored ? ` ${stored} instance(s) received in full before this were stored.` : '';
      if (e instanceof IdleTimeoutError) return refuse(408, 'request-timeout', `The request body stalled.${note}`);
      if (isTresorError(e) && e.kind === 'too-large') return refuse(413, e.reason, `${e.message}${note}`);
      if (isTresorError(e) && e.reason === 'bad-multipart') {
        if (!stored) return refuse(400, e.reason, e.message);
        // Some parts were complete and stored: report them, and the malformed rest as a failure.
        slots.push({ ok: false, reason: FAILURE.cannotUnderstand, conflict: false });
      } else if (isTresorError(e)) {
        throw e;
      } else {
        // The client went away or the socket failed: nothing to answer.
        request.log.info({ err: { message: (e as Error).message } }, 'STOW-RS request abandoned');
        return refuse(400, 'incomplete-request', 'The request ended early.');
      }
    }
    await transfer.end();
    const outcomes = slots.filter((o): o is PartOutcome => o !== undefined);
    if (outcomes.length === 0) return problem(reply, 400, 'no-parts', 'The request has no parts.');
    const okStudies = new Set(outcomes.flatMap((o) => (o.ok ? [o.studyUid] : [])));
    const studyLink = params.study ? studyUrl(ctx.urls, params.study) : okStudies.size === 1 ? studyUrl(ctx.urls, [...okStudies][0]) : undefined;
    const body = stowResponse(outcomes, studyLink, (o) => instanceUrl(ctx.urls, o.studyUid, o.seriesUid, o.sopInstanceUid));
    return reply.code(stowStatus(outcomes)).headers(stowHeaders(outcomes)).header('content-type', 'application/dicom+json').send(JSON.stringify(body));
  };

  app.post('/studies', handler);
  app.post('/studies/:study', handler);
}

/** One application/dicom part through ingest. Too-large parts stop the whole request (thrown). */
async function storeOne(
  ctx: DicomwebContext,
  transfer: IngestTransfer,
  part: Part,
  expectedStudy: string | undefined,
  departmentId: number | undefined,
  onSpooled: () => void,
): Promise<PartOutcome> {
  const maxObject = ctx.deps.config.limits.maxObjectBytes;
  const prefix: Buffer[] = [];
  let prefixLength = 0;
  let n = 0;
  const peek = () => peekUids(Buffer.concat(prefix));
  const guard = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > maxObject) return cb(tooLarge('object-too-large', `Objects above ${maxObject} bytes are not accepted.`));
      cb(null, chunk);
    },
  });
  // Errors of the guard reach us through ingest's rejection; a listener must remain for
  // the ones emitted after ingest's pipeline has let go of it (pipe() re-emits them).
  guard.on('error', () => undefined);
  const body = part.body;
  // The first bytes name the instance in a failure report, whoever consumes the part.
  body.on('data', (chunk: Buffer) => {
    if (prefixLength < PEEK_BYTES) {
      const take = chunk.subarray(0, PEEK_BYTES - prefixLength);
      prefix.push(Buffer.from(take));
      prefixLength += take.length;
    }
  });
  let partError: Error | undefined;
  body.on('error', (e: Error) => {
    partError = e;
    guard.destroy(e);
  });
  body.on('close', () => {
    if (!body.readableEnded && !guard.destroyed) guard.destroy(partError ?? new Error('part ended early'));
  });
  body.pipe(guard);
  try {
    // PS3.18 §10.5.1: POST /studies/{study} stores only instances of that study; ingest
    // checks the parsed Study Instance UID before anything is stored.
    const r = await transfer.ingestStream(guard, {
      onSpooled,
      ...(departmentId !== undefined ? { departmentId } : {}),
      ...(expectedStudy !== undefined ? { expectedStudyUid: expectedStudy } : {}),
    });
    return {
      ok: true,
      sopClassUid: r.sopClassUid,
      sopInstanceUid: r.sopInstanceUid,
      studyUid: r.studyUid,
      seriesUid: r.seriesUid,
      ...(r.outcome === 'duplicate' ? { duplicate: true } : {}),
      ...(r.warnings.includes('preamble-zeroed') ? { warning: WARNING_COERCED } : {}),
    };
  } catch (e) {
    // A part over the size limit ends the request: never read the rest of it.
    if (isTresorError(e) && e.kind === 'too-large') throw e;
    // Keep parsing: discard what is left of this part (bounded by the request limit).
    body.unpipe(guard);
    if (!body.readableEnded && !body.destroyed) {
      body.resume();
      await once(body, 'end').catch(() => undefined);
    }
    // The part itself broke (truncated multipart, request aborted): that is the request's failure.
    const broken = partError as Error | undefined;
    if (broken) throw broken instanceof TresorError ? broken : invalid('bad-multipart', 'The multipart body is malformed.');
    const f = failureOf(e);
    const ids = peek();
    return { ok: false, ...f, sopClassUid: ids.sopClassUid, sopInstanceUid: ids.sopInstanceUid };
  }
}

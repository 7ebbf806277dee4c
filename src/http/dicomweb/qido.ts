// QIDO-RS (PS3.18 §10.6): six search resources over the one core query model.
// Results are application/dicom+json. An empty result is 200 with [] — the current
// PS3.18 (§10.6.3.3 / §11.9.3.1: "200 … also used to indicate a successful search
// that yields zero results, in which case the payload includes an empty list"),
// used consistently, so a search inside another department's study answers exactly
// like a search inside a study that does not exist. Truncation is announced with a
// Warning header (PS3.18 §8.3.4.4), computed by the core within the caller's scope.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DicomJson } from '../../core/dicom/json.js';
import type { DicomwebContext } from './context.js';
import { principalOf } from './errors.js';
import { qidoRequest } from './qido-params.js';
import type { QidoLevel } from './types.js';
import { instanceUrl, seriesUrl, studyUrl } from './urls.js';
import { acceptsDicomJson } from './request-accept.js';

const STUDY = '0020000D';
const SERIES = '0020000E';
const SOP_INSTANCE = '00080018';
const RETRIEVE_URL = '00081190';

export const TRUNCATION_WARNING = '299 tresor "The number of results exceeded the maximum supported by the server or the limit requested; use offset to get more."';

function str(ds: DicomJson, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

export function registerQidoRoutes(app: FastifyInstance, ctx: DicomwebContext): void {
  const search = (level: QidoLevel, fixedOf: (params: Record<string, string>) => Record<string, string>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      if (!acceptsDicomJson(request, reply)) return reply;
      const p = principalOf(request);
      const params = request.params as Record<string, string>;
      const req = qidoRequest(level, request.query as Record<string, unknown>, fixedOf(params));
      // One audited search (core/query-audit.ts): the identifier's values may be patient
      // names, so the row gets the level and counts only.
      const result = await ctx.deps.query.search(p, req, { via: 'dicomweb', details: params.study ? { studyUid: params.study } : {} });
      const body = result.matches.map((m) => withRetrieveUrl(level, m, ctx));
      if (result.truncated) reply.header('warning', TRUNCATION_WARNING);
      return reply.code(200).header('content-type', 'application/dicom+json').send(JSON.stringify(body));
    };

  app.get('/studies', search('STUDY', () => ({})));
  app.get('/series', search('SERIES', () => ({})));
  app.get('/instances', search('IMAGE', () => ({})));
  app.get('/studies/:study/series', search('SERIES', (p) => ({ [STUDY]: p.study })));
  app.get('/studies/:study/instances', search('IMAGE', (p) => ({ [STUDY]: p.study })));
  app.get('/studies/:study/series/:series/instances', search('IMAGE', (p) => ({ [STUDY]: p.study, [SERIES]: p.series })));
}

/** PS3.18 Tables 10.6.3-3…5: each result carries the URL to retrieve it. */
function withRetrieveUrl(level: QidoLevel, m: DicomJson, ctx: DicomwebContext): DicomJson {
  const st = str(m, STUDY);
  const se = str(m, SERIES);
  const sop = str(m, SOP_INSTANCE);
  let url: string | undefined;
  if (level === 'STUDY' && st) url = studyUrl(ctx.urls, st);
  else if (level === 'SERIES' && st && se) url = seriesUrl(ctx.urls, st, se);
  else if (level === 'IMAGE' && st && se && sop) url = instanceUrl(ctx.urls, st, se, sop);
  return url ? { ...m, [RETRIEVE_URL]: { vr: 'UR', Value: [url] } } : m;
}

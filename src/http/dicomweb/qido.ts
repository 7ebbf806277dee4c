// QIDO-RS (PS3.18 §10.6): six search resources over the one core query model.
// Results are application/dicom+json. An empty result is 200 with [] — the current
// PS3.18 (§10.6.3.3 / §11.9.3.1: "200 … also used to indicate a successful search
// that yields zero results, in which case the payload includes an empty list"),
// used consistently, so a search inside another department's study answers exactly
// like a search inside a study that does not exist. Truncation is announced with a
// Warning header (PS3.18 §8.3.4.4), computed by the core within the caller's scope.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DicomJson } from '../../core/dicom/json.js';
import { normalizeOwnDicomJson } from '../../core/dicom/json-normalize.js';
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
const MODALITIES_IN_STUDY = '00080061';

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
      // Results carry stored JSON (includefield=all, keys kept in the metadata): rows stored
      // before ingest normalized are rendered per PS3.18 F.2 here (json-normalize.ts).
      // One audited search (core/query-audit.ts): the identifier's values may be patient
      // names, so the row gets the level and counts only.
      const result = await ctx.deps.query.search(p, req, { via: 'dicomweb', details: params.study ? { studyUid: params.study } : {} });
      // Each match is a new object of this request's: normalized, then completed, in place.
      const body = result.matches.map((m) => withRetrieveUrl(level, withoutEmptyModalities(normalizeOwnDicomJson(m)), ctx));
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

/**
 * ModalitiesInStudy (0008,0061) is Type R in PS3.18 Table 10.6.3-3, so the core returns
 * it zero-length ({"vr":"CS"}, PS3.18 F.2.5) for a study none of whose series has a
 * Modality. Modality is Type 1 in every General Series module (PS3.3 C.7.3.1), so such a
 * study holds non-conformant objects and its modalities are simply not known; viewers
 * read a present ModalitiesInStudy's Value unguarded (OHIF 3.13 getModalities fails on
 * it and the whole study list is lost). Here — and only here, C-FIND keeps PS3.4's
 * zero-length return keys — an attribute without a value is left out, the reading of
 * "not known" that PS3.18 gives the table's Type C rows (query-keys.ts IF_PRESENT).
 */
function withoutEmptyModalities(m: DicomJson): DicomJson {
  const el = m[MODALITIES_IN_STUDY];
  if (el && !(Array.isArray(el.Value) && el.Value.length > 0)) delete m[MODALITIES_IN_STUDY];
  return m;
}

/** PS3.18 Tables 10.6.3-3…5: each result carries the URL to retrieve it (set on `m`). */
function withRetrieveUrl(level: QidoLevel, m: DicomJson, ctx: DicomwebContext): DicomJson {
  const st = str(m, STUDY);
  const se = str(m, SERIES);
  const sop = str(m, SOP_INSTANCE);
  let url: string | undefined;
  if (level === 'STUDY' && st) url = studyUrl(ctx.urls, st);
  else if (level === 'SERIES' && st && se) url = seriesUrl(ctx.urls, st, se);
  else if (level === 'IMAGE' && st && se && sop) url = instanceUrl(ctx.urls, st, se, sop);
  if (url) m[RETRIEVE_URL] = { vr: 'UR', Value: [url] };
  return m;
}

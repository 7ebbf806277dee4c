// Links in DICOMweb responses (RetrieveURL, BulkDataURI, Location). They are built
// from the configured public base URL, or are absolute paths on this server when
// none is configured — never from the Host header, which the client controls
// (cache poisoning, links to another host).

import type { DicomJson, DicomJsonElement } from '../../core/dicom/json.js';
import { BULK_MARKER_RE, BULK_MARKER_TEXT } from '../../core/dicom/metadata-text.js';

export interface UrlBase {
  publicUrl?: string;
  /** The plugin's route prefix, e.g. "/dicomweb". */
  prefix: string;
}

export const rootUrl = (b: UrlBase): string => `${b.publicUrl ?? ''}${b.prefix}`;
export const studyUrl = (b: UrlBase, study: string): string => `${rootUrl(b)}/studies/${study}`;
export const seriesUrl = (b: UrlBase, study: string, series: string): string => `${studyUrl(b, study)}/series/${series}`;
export const instanceUrl = (b: UrlBase, study: string, series: string, instance: string): string =>
  `${seriesUrl(b, study, series)}/instances/${instance}`;

const BULK_RE = BULK_MARKER_RE;

/**
 * The metadata of one instance with each relative "bulkdata/<tag path>" marker
 * (core/dicom/json.ts) turned into a link under the instance's URL (PS3.18 §8.7.4;
 * resolved by GET …/instances/{uid}/bulkdata/<tag path>).
 */
export function withBulkDataUris(md: DicomJson, base: string): DicomJson {
  const out: DicomJson = {};
  for (const [tag, el] of Object.entries(md)) out[tag] = rewrite(el, base);
  return out;
}

function rewrite(el: DicomJsonElement, base: string): DicomJsonElement {
  if (el.BulkDataURI !== undefined) {
    const m = BULK_RE.exec(el.BulkDataURI);
    return m ? { vr: el.vr, BulkDataURI: `${base}/bulkdata/${m[1]}` } : { vr: el.vr };
  }
  if (el.vr === 'SQ' && Array.isArray(el.Value)) {
    return { vr: 'SQ', Value: el.Value.map((item) => (item && typeof item === 'object' ? withBulkDataUris(item as DicomJson, base) : item)) };
  }
  return el;
}

/**
 * The same links in stored metadata text (core/dicom/metadata-text.ts, whose markers
 * were already checked at ingest): a text substitution, no parse. `base` goes into a
 * JSON string, so it is JSON-escaped.
 */
export function bulkDataUrisInText(text: string, base: string): string {
  if (!text.includes(BULK_MARKER_TEXT)) return text;
  const link = `"BulkDataURI":"${JSON.stringify(base).slice(1, -1)}/bulkdata/`;
  return text.replaceAll(BULK_MARKER_TEXT, () => link);
}

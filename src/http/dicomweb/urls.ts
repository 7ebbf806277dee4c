// Links in DICOMweb responses (RetrieveURL, BulkDataURI, Location). They are built
// from the configured public base URL, or are absolute paths on this server when
// none is configured — never from the Host header, which the client controls
// (cache poisoning, links to another host).

import type { DicomJson, DicomJsonElement } from '../../core/dicom/json.js';

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

const BULK_RE = /^bulkdata\/([0-9A-F]{8}(\/\d{1,6}\/[0-9A-F]{8})*)$/;

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

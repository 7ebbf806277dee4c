// Issue 13 item 3: the WADO-RS metadata of an instance (PS3.18 §10.4.1.1.2) serialized
// once, at ingest, so that /metadata of a 1,000-instance series concatenates stored text
// instead of parsing, normalizing and re-serializing every instance's JSON per request.
// The text is PS3.18 F.2 JSON (json-normalize.ts) whose BulkDataURIs are still the
// relative "bulkdata/<tag path>" markers of json.ts: the front door turns them into links
// under the instance's URL per request (http/dicomweb/urls.ts bulkDataUrisInText), since
// the public URL is configuration, not data. A marker of any other shape is dropped
// (only its vr is kept), as the per-row rendering always did.

import type { DicomJson, DicomJsonElement } from './json.js';
import { normalizeDicomJson } from './json-normalize.js';

/** A relative bulk data marker as json.ts writes it (tags and item numbers). */
export const BULK_MARKER_RE = /^bulkdata\/([0-9A-F]{8}(\/\d{1,6}\/[0-9A-F]{8})*)$/;

/**
 * In JSON.stringify's output `"BulkDataURI":"` can only be an object key followed by a
 * string value: inside a string value every `"` is escaped, so the sequence cannot occur.
 */
export const BULK_MARKER_TEXT = '"BulkDataURI":"bulkdata/';

/** The stored text of an instance's metadata (instances.metadata_json). */
export function metadataText(md: DicomJson): string {
  return JSON.stringify(keepValidMarkers(normalizeDicomJson(md)));
}

function keepValidMarkers(md: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const [tag, el] of Object.entries(md)) out[tag] = element(el);
  return out;
}

function element(el: DicomJsonElement): DicomJsonElement {
  if (el.BulkDataURI !== undefined) return BULK_MARKER_RE.test(el.BulkDataURI) ? { vr: el.vr, BulkDataURI: el.BulkDataURI } : { vr: el.vr };
  if (el.vr === 'SQ' && Array.isArray(el.Value)) {
    return { vr: 'SQ', Value: el.Value.map((item) => (item && typeof item === 'object' ? keepValidMarkers(item as DicomJson) : item)) };
  }
  return el;
}

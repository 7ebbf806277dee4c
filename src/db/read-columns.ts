// Issue 13 item 3: what an instance row keeps, besides its DICOM JSON, so that reads do
// not open that JSON. Computed once when the row is written (ingest.repo.ts) and by
// migration 006 for rows written before it.

import type { DicomJson } from '../core/dicom/json.js';
import { metadataText } from '../core/dicom/metadata-text.js';

/**
 * The instance attributes an IMAGE-level QIDO returns by default that live in the
 * instance's own JSON (PS3.18 Table 10.6.3-5 as core/dicom/query-keys.ts lists it, less
 * the patient, study and series keys, read from their own rows, and the computed ones):
 * SOP Class and Instance UIDs, Instance Number, Number of Frames, Rows, Columns, Bits Allocated.
 * A search that asks for no other instance attribute reads these from
 * instances.qido_attributes instead of the whole metadata (test/core/read-aggregates.test.ts
 * checks the list against query-keys.ts). Changing it needs a migration that re-fills the column.
 */
export const QIDO_INSTANCE_TAGS: readonly string[] = ['00080016', '00080018', '00200013', '00280008', '00280010', '00280011', '00280100'];

/** The two read columns of a new instance row: instances.qido_attributes and instances.metadata_json. */
export function instanceReadColumns(metadata: DicomJson): { qido_attributes: string; metadata_json: string } {
  const qido: DicomJson = {};
  for (const tag of QIDO_INSTANCE_TAGS) if (metadata[tag] !== undefined) qido[tag] = metadata[tag];
  return { qido_attributes: JSON.stringify(qido), metadata_json: metadataText(metadata) };
}

// Debian's python3-pydicom sample files (apt-get install python3-pydicom).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const SAMPLE_DIR = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

export function sampleFiles(): string[] {
  if (!fs.existsSync(SAMPLE_DIR)) {
    // Fail, never skip: CI installs python3-pydicom (.ci/run).
    throw new Error(`${SAMPLE_DIR} is missing: apt-get install -y python3-pydicom`);
  }
  return fs
    .readdirSync(SAMPLE_DIR)
    .filter((f) => f.endsWith('.dcm'))
    .sort()
    .map((f) => path.join(SAMPLE_DIR, f));
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(typeof b === 'string' ? fs.readFileSync(b) : b).digest('hex');

/**
 * Sample files that are not storable Part 10 objects, with the reason ingest gives.
 * Each was checked by hand: no "DICM" prefix, no meta group length, no transfer
 * syntax, a value running past the end of the file, or no Study/Series/SOP UID.
 */
export const BROKEN_SAMPLES: Record<string, string> = {
  'ExplVR_BigEndNoMeta.dcm': 'not-part10',
  'ExplVR_LitEndNoMeta.dcm': 'not-part10',
  'no_meta.dcm': 'not-part10',
  'rtstruct.dcm': 'not-part10',
  'no_meta_group_length.dcm': 'bad-meta',
  'meta_missing_tsyntax.dcm': 'bad-meta',
  'MR_truncated.dcm': 'truncated',
  'rtplan_truncated.dcm': 'truncated',
  'SC_rgb_jpeg.dcm': 'truncated',
  'UN_sequence.dcm': 'missing-attribute',
  'empty_charset_LEI.dcm': 'missing-attribute',
  'nested_priv_SQ.dcm': 'missing-attribute',
  'priv_SQ.dcm': 'missing-attribute',
};

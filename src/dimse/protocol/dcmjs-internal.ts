// The dcmjs that dcmjs-dimse 0.3.3 requires. Today that is the application's own (the
// "overrides" in package.json, core/dicom/dcmjs.ts); resolved from dcmjs-dimse all the
// same, so that an update of it that nests its own copy again still gets the right one.
// Data sets it parses and writes go through that copy, so identifiers are converted with
// the same copy, and its loggers are the ones to silence: dcmjs warns with element
// values ("Unknown name in dataset 00091040 : <patient name>"), which is patient
// data in logs (ARCHITECTURE.md rule 8, README.md defect 13).

import { createRequire } from 'node:module';
import dimse from 'dcmjs-dimse';
import { silenceDcmjs } from '../../core/dicom/dcmjs-quiet.js';

const requireFromDimse = createRequire(createRequire(import.meta.url).resolve('dcmjs-dimse'));

interface Level {
  setLevel(l: string): void;
  getLogger(name: string): { setLevel(l: string): void };
}

export const nestedDcmjs = requireFromDimse('dcmjs') as {
  log: Level;
  data: {
    DicomMetaDictionary: {
      denaturalizeDataset(d: Record<string, unknown>): Record<string, { vr: string; Value?: unknown[] }>;
      naturalizeDataset(d: Record<string, unknown>): Record<string, unknown>;
    };
  };
};

let quiet = false;

/** Silences dcmjs-dimse's and its dcmjs's console logging (process-wide, idempotent). */
export function silenceDcmjsLogging(): void {
  if (quiet) return;
  quiet = true;
  (dimse.log as unknown as Level).setLevel('silent');
  silenceDcmjs(nestedDcmjs);
}

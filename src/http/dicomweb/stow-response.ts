// The Store Instances Response Module (PS3.18 §10.5.3, Annex I) as DICOM JSON, and
// the mapping from core errors to Failure Reasons (PS3.18 Table I.2-2, PS3.7 C.4).

import type { DicomJson } from '../../core/dicom/json.js';
import { isTresorError } from '../../core/errors.js';

export const FAILURE = {
  processing: 0x0110, // Processing failure
  duplicate: 0x0111, // Duplicate SOP Instance (PS3.7 C.4.2)
  notAuthorized: 0x0124, // Refused: Not authorized
  outOfResources: 0xa700, // Refused: Out of Resources
  doesNotMatchSopClass: 0xa900, // Error: Data Set does not match SOP Class
  cannotUnderstand: 0xc000, // Error: Cannot understand
} as const;

/** Warning Reason B000: Coercion of Data Elements (PS3.18 Table I.2-1). */
export const WARNING_COERCED = 0xb000;

export type PartOutcome =
  | { ok: true; sopClassUid: string; sopInstanceUid: string; studyUid: string; seriesUid: string; warning?: number; duplicate?: boolean }
  | { ok: false; sopClassUid?: string; sopInstanceUid?: string; reason: number; conflict: boolean; retryAfterSeconds?: number };

/** Retry-After when an outage gives no figure of its own (RFC 9110 §10.2.3). */
const DEFAULT_RETRY_AFTER_S = 30;

/**
 * Which Failure Reason a refused part gets; `conflict` marks refusals that are 409
 * material; `retryAfterSeconds` marks an outage (blob store or database unavailable):
 * nothing was stored and the same request may succeed later.
 */
export function failureOf(e: unknown): { reason: number; conflict: boolean; retryAfterSeconds?: number } {
  if (!isTresorError(e)) return { reason: FAILURE.processing, conflict: false };
  switch (e.kind) {
    case 'unavailable':
      // PS3.18 Table I.2-2 / PS3.4 B.2.3: A700 Refused: Out of Resources, i.e. "try again".
      return { reason: FAILURE.outOfResources, conflict: false, retryAfterSeconds: e.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_S };
    case 'too-large':
      return { reason: FAILURE.outOfResources, conflict: false };
    case 'forbidden':
      return { reason: FAILURE.notAuthorized, conflict: true };
    case 'conflict':
      if (e.reason === 'sop-instance-conflict') return { reason: FAILURE.duplicate, conflict: true };
      // The study belongs to another department (or the series to another study): not for this writer to add to.
      if (e.reason === 'study-in-other-department') return { reason: FAILURE.notAuthorized, conflict: true };
      return { reason: FAILURE.processing, conflict: true };
    case 'invalid':
      if (e.reason === 'missing-attribute') return { reason: FAILURE.doesNotMatchSopClass, conflict: false };
      if (e.reason === 'department-required') return { reason: FAILURE.notAuthorized, conflict: true };
      if (e.reason === 'study-uid-mismatch') return { reason: FAILURE.doesNotMatchSopClass, conflict: true };
      return { reason: FAILURE.cannotUnderstand, conflict: false };
    default:
      return { reason: FAILURE.processing, conflict: false };
  }
}

const ui = (v: string) => ({ vr: 'UI', Value: [v] });
const us = (v: number) => ({ vr: 'US', Value: [v] });
const ur = (v: string) => ({ vr: 'UR', Value: [v] });

/**
 * The response dataset. `studyUrl` is the RetrieveURL of the study when all stored
 * instances belong to one study; instance URLs are built by `instanceUrl`.
 */
export function stowResponse(outcomes: PartOutcome[], studyUrl: string | undefined, instanceUrl: (o: Extract<PartOutcome, { ok: true }>) => string): DicomJson {
  const ds: DicomJson = {};
  if (studyUrl) ds['00081190'] = ur(studyUrl);
  const failed = outcomes.filter((o): o is Extract<PartOutcome, { ok: false }> => !o.ok);
  const stored = outcomes.filter((o): o is Extract<PartOutcome, { ok: true }> => o.ok);
  // Failures with SOP UIDs go in the Failed SOP Sequence (its UIDs are Type 1); parts
  // we could not identify at all go in the Other Failures Sequence (0008,119A).
  const identified = failed.filter((f) => f.sopClassUid && f.sopInstanceUid);
  const other = failed.filter((f) => !(f.sopClassUid && f.sopInstanceUid));
  if (identified.length) {
    ds['00081198'] = {
      vr: 'SQ',
      Value: identified.map((f) => ({ '00081150': ui(f.sopClassUid!), '00081155': ui(f.sopInstanceUid!), '00081197': us(f.reason) })),
    };
  }
  if (other.length) ds['0008119A'] = { vr: 'SQ', Value: other.map((f) => ({ '00081197': us(f.reason) })) };
  if (stored.length) {
    ds['00081199'] = {
      vr: 'SQ',
      Value: stored.map((s) => ({
        '00081150': ui(s.sopClassUid),
        '00081155': ui(s.sopInstanceUid),
        '00081190': ur(instanceUrl(s)),
        ...(s.warning !== undefined ? { '00081196': us(s.warning) } : {}),
      })),
    };
  }
  return ds;
}

/**
 * PS3.18 Table 10.5.3-1: 200 all stored; 202 some stored or warnings; 409 none stored;
 * 503 none stored and every failure an outage (PS3.18 §8.6.1.2 / RFC 9110 §15.6.4: the
 * client retries after Retry-After, see stowHeaders).
 */
export function stowStatus(outcomes: PartOutcome[]): number {
  const stored = outcomes.filter((o) => o.ok);
  if (stored.length === outcomes.length) return stored.some((o) => o.ok && o.warning !== undefined) ? 202 : 200;
  if (stored.length > 0) return 202;
  if (outcomes.every((o) => !o.ok && o.retryAfterSeconds !== undefined)) return 503;
  return 409;
}

/**
 * Headers of the response beyond its content type: Retry-After on a 503; Tresor-Duplicates,
 * the number of stored parts that were already there with the same bytes. PS3.18 has no
 * Warning Reason for a re-sent identical instance (it is simply a success), yet an import
 * reports "already there" apart from "stored" (`tresor import` sends one file a request).
 */
export function stowHeaders(outcomes: PartOutcome[]): Record<string, string> {
  if (stowStatus(outcomes) !== 503) {
    const duplicates = outcomes.filter((o) => o.ok && o.duplicate).length;
    return duplicates ? { 'tresor-duplicates': String(duplicates) } : {};
  }
  const after = Math.max(...outcomes.map((o) => (o.ok ? 0 : (o.retryAfterSeconds ?? 0))));
  return { 'retry-after': String(after) };
}

// STOW-RS status for outages (issue 11 item 3): PS3.18 Table 10.5.3-1 gives 409 when
// nothing was stored, but a failure that is only "the blob store/database is down now"
// must tell the client to retry: 503 + Retry-After, with Failure Reason A700 per part.

import { describe, expect, it } from 'vitest';
import { TresorError, conflict } from '../../src/core/errors.js';
import { FAILURE, failureOf, stowHeaders, stowStatus, type PartOutcome } from '../../src/http/dicomweb/stow-response.js';

const outage = new TresorError('blob-store-unavailable', 'object storage is unavailable; try again later', { retryAfterSeconds: 30 });
const stored: PartOutcome = { ok: true, sopClassUid: '1.2', sopInstanceUid: '1.2.3', studyUid: '1', seriesUid: '1.1' };
const failed = (e: unknown): PartOutcome => ({ ok: false, ...failureOf(e), sopClassUid: '1.2', sopInstanceUid: '1.2.4' });

describe('STOW-RS answer for an outage', () => {
  it('maps an unavailable error to A700 with Retry-After', () => {
    expect(failureOf(outage)).toEqual({ reason: FAILURE.outOfResources, conflict: false, retryAfterSeconds: 30 });
    // Without a figure of its own, a default one: the client must still learn to retry.
    expect(failureOf(new TresorError('storage-unavailable')).retryAfterSeconds).toBeGreaterThan(0);
  });

  it('answers 503 + Retry-After only when every part failed for an outage', () => {
    expect(stowStatus([failed(outage), failed(outage)])).toBe(503);
    expect(stowHeaders([failed(outage)])).toEqual({ 'retry-after': '30' });
    // A real refusal among them: 409 as before, no Retry-After.
    const mixed = [failed(outage), failed(conflict('sop-instance-conflict'))];
    expect(stowStatus(mixed)).toBe(409);
    expect(stowHeaders(mixed)).toEqual({});
    // Something stored: 202, the outage part reported with A700 for the client to re-send.
    expect(stowStatus([stored, failed(outage)])).toBe(202);
    expect(stowStatus([failed(new Error('parser exploded'))])).toBe(409);
  });
});

describe('STOW-RS answer for a re-send', () => {
  it('counts the parts that were already stored with the same bytes in Tresor-Duplicates', () => {
    const dup: PartOutcome = { ...stored, sopInstanceUid: '1.2.5', duplicate: true };
    expect(stowStatus([stored, dup])).toBe(200);
    expect(stowHeaders([stored, dup, dup])).toEqual({ 'tresor-duplicates': '2' });
    expect(stowHeaders([stored])).toEqual({});
  });
});

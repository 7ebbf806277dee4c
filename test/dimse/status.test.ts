// Core error kinds → DIMSE statuses (ARCHITECTURE.md rule 4, src/dimse/status.ts).
import { describe, expect, it } from 'vitest';
import { conflict, forbidden, invalid, notFound, REASONS, TresorError, tooLarge, unauthenticated, unavailable, type Reason } from '../../src/core/errors.js';
import { statusForError } from '../../src/dimse/status.js';

describe('statusForError', () => {
  it.each([
    ['forbidden', forbidden(), 'C-STORE', 0x0124],
    ['unauthenticated', unauthenticated(), 'C-STORE', 0x0124],
    ['not-found on store', notFound(), 'C-STORE', 0x0124],
    ['not-found on get', notFound(), 'C-GET', 0xc000],
    ['too-large', tooLarge('object-too-large'), 'C-STORE', 0xa700],
    ['unavailable', unavailable('query-failed'), 'C-FIND', 0xa700],
    ['invalid data', invalid('not-part10'), 'C-STORE', 0xc000],
    ['invalid identifier', invalid('invalid-uid'), 'C-FIND', 0xa900],
    ['department required', invalid('department-required'), 'C-STORE', 0x0124],
    ['duplicate instance', conflict('sop-instance-conflict'), 'C-STORE', 0x0111],
    ['other department', conflict('study-in-other-department'), 'C-STORE', 0x0110],
    ['study UID mismatch on store', invalid('study-uid-mismatch'), 'C-STORE', 0xa900],
    ['study UID mismatch on find', invalid('study-uid-mismatch'), 'C-FIND', 0xa900],
    ['department required on get', invalid('department-required'), 'C-GET', 0x0124],
    ['duplicate instance on move', conflict('sop-instance-conflict'), 'C-MOVE', 0x0111],
    ['other conflict', conflict('user-exists'), 'C-STORE', 0x0110],
    ['hidden refusal is a plain not-found', notFound('not-found', 'no such user', { hidden: true }), 'C-FIND', 0xc000],
  ] as const)('%s', (_name, err, service, status) => {
    const a = statusForError(err, service);
    expect(a.status).toBe(status);
    expect(a.comment).toBe(err.reason);
  });

  it('answers every catalogued reason with a failure status and the reason as comment', () => {
    for (const reason of Object.keys(REASONS) as Reason[]) {
      for (const service of ['C-STORE', 'C-FIND', 'C-GET', 'C-MOVE'] as const) {
        const a = statusForError(new TresorError(reason), service);
        expect(a.status, `${reason} ${service}`).not.toBe(0x0000);
        expect(a.comment).toBe(reason);
      }
    }
  });

  it('never returns the message of an unknown error', () => {
    expect(statusForError(new Error('SELECT * FROM patients WHERE name = \'Doe\''), 'C-FIND')).toEqual({ status: 0x0110, comment: 'processing-failure' });
  });
});

// Core error kinds → DIMSE statuses (ARCHITECTURE.md rule 4, src/dimse/status.ts).
import { describe, expect, it } from 'vitest';
import { conflict, forbidden, invalid, notFound, tooLarge, unauthenticated, unavailable } from '../../src/core/errors.js';
import { statusForError } from '../../src/dimse/status.js';

describe('statusForError', () => {
  it.each([
    ['forbidden', forbidden(), 'C-STORE', 0x0124],
    ['unauthenticated', unauthenticated(), 'C-STORE', 0x0124],
    ['not-found on store', notFound(), 'C-STORE', 0x0124],
    ['not-found on get', notFound(), 'C-GET', 0xc000],
    ['too-large', tooLarge('object-too-large'), 'C-STORE', 0xa700],
    ['unavailable', unavailable('db-down'), 'C-FIND', 0xa700],
    ['invalid data', invalid('not-part10'), 'C-STORE', 0xc000],
    ['invalid identifier', invalid('invalid-uid'), 'C-FIND', 0xa900],
    ['department required', invalid('department-required'), 'C-STORE', 0x0124],
    ['duplicate instance', conflict('sop-instance-conflict'), 'C-STORE', 0x0111],
    ['other department', conflict('study-in-other-department'), 'C-STORE', 0x0110],
  ] as const)('%s', (_name, err, service, status) => {
    const a = statusForError(err, service);
    expect(a.status).toBe(status);
    expect(a.comment).toBe(err.reason);
  });

  it('never returns the message of an unknown error', () => {
    expect(statusForError(new Error('SELECT * FROM patients WHERE name = \'Doe\''), 'C-FIND')).toEqual({ status: 0x0110, comment: 'processing-failure' });
  });
});

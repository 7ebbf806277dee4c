// The two edits the edge makes to a relayed A-ASSOCIATE-RQ/AC (user-info.ts): the
// Maximum Length item is capped at the edge's limit (0 = "no limit" becomes the
// limit, PS3.8 §D.1), the request's Implementation Version Name announces the edge;
// everything else stays byte for byte, and a malformed AC is refused.

import { describe, expect, it } from 'vitest';
import { edgeOf, edgeVersionName } from '../../src/edge/announce.js';
import { announcedMaxLength, editUserInformation } from '../../src/edge/user-info.js';
import { parseAssociateRq, PduError } from '../../src/dimse/protocol/pdu.js';
import { associateRq, UID } from '../helpers/dimse-raw.js';

const rqOf = (maxPdu: number) =>
  associateRq({
    callingAe: 'CT01',
    contexts: [
      { id: 3, abstractSyntax: UID.CtStorage, transferSyntaxes: [UID.ExplicitLE] },
      { id: 1, abstractSyntax: UID.Verification, transferSyntaxes: [UID.ImplicitLE] },
    ],
    maxPdu,
    roles: [{ abstractSyntax: UID.CtStorage, scu: true, scp: true }],
    userIdentity: { type: 2, primary: 'alice', secondary: 'sécret' },
  });

describe('editUserInformation', () => {
  it('caps the maximum length, announces the edge and keeps everything else', () => {
    const original = parseAssociateRq(rqOf(0).subarray(6));
    const edited = editUserInformation(rqOf(0), { maxPduBytes: 65536, implementationVersion: edgeVersionName('CLINIC1') });
    const rq = parseAssociateRq(edited.subarray(6));
    expect(rq.maxPduLength).toBe(65536);
    expect(edgeOf(rq.implementationVersion)).toBe('CLINIC1');
    expect({ ...rq, maxPduLength: 0, implementationVersion: original.implementationVersion }).toEqual(original);
    expect(edited.readUInt32BE(2)).toBe(edited.length - 6);
  });

  it('keeps a smaller announced maximum and leaves the version alone when not asked', () => {
    const edited = editUserInformation(rqOf(16384), { maxPduBytes: 65536 });
    expect(announcedMaxLength(edited)).toBe(16384);
    expect(edited.equals(rqOf(16384))).toBe(true);
    expect(announcedMaxLength(editUserInformation(rqOf(1 << 24), { maxPduBytes: 65536 }))).toBe(65536);
  });

  it('refuses what does not add up', () => {
    const rq = rqOf(0);
    const short = Buffer.from(rq.subarray(0, rq.length - 3));
    short.writeUInt32BE(short.length - 6, 2);
    expect(() => editUserInformation(short, { maxPduBytes: 65536 })).toThrow(PduError);
    const wrongType = Buffer.from(rq);
    wrongType[0] = 0x04;
    expect(() => editUserInformation(wrongType, { maxPduBytes: 65536 })).toThrow(PduError);
  });

  it('recognizes only well-formed edge names', () => {
    expect(edgeOf('OFFIS_DCMTK_367')).toBeUndefined();
    expect(edgeOf('EDGE:')).toBeUndefined();
    expect(edgeOf('EDGE:A B')).toBeUndefined();
    expect(edgeOf(undefined)).toBeUndefined();
    expect(edgeOf('EDGE:WARD-3')).toBe('WARD-3');
  });
});

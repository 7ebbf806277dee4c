// The DIMSE command-set codec (src/dimse/protocol/command-set.ts) against dcmjs-dimse's
// own encoder: every command Tresor sends must come out byte for byte as dcmjs would
// have written it (PS3.7 Annex E: group 0000, Implicit VR Little Endian, ascending tags,
// CommandGroupLength first), and what it reads back must match what dcmjs reads.
// The retrieve tests (qr.test.ts, echo-store.test.ts) prove dcmtk accepts it on the wire.

import dimse from 'dcmjs-dimse';
import { describe, expect, it } from 'vitest';
import { CommandTag, decodeCommandSet, encodeCommandSet, NO_DATA_SET, readUs } from '../../src/dimse/protocol/command-set.js';

const { CEchoResponse, CStoreResponse, CFindResponse, CGetResponse, CMoveResponse } = dimse.responses;
const { CStoreRequest } = dimse.requests;

type Cmd = { getCommandDataset(): { getElements(): Record<string, unknown>; setElement(k: string, v: unknown): void; getDenaturalizedCommandDataset(): Buffer } };
const dcmjsBytes = (c: Cmd) => c.getCommandDataset().getDenaturalizedCommandDataset();
const ours = (c: Cmd) => encodeCommandSet(c.getCommandDataset().getElements());

function response<T extends Cmd & { setMessageIdBeingRespondedTo(n: number): void; setAffectedSopClassUid(u: string): void }>(r: T, sopClass: string): T {
  r.setMessageIdBeingRespondedTo(7);
  r.setAffectedSopClassUid(sopClass);
  delete r.getCommandDataset().getElements().ErrorComment;
  return r;
}

describe('DIMSE command sets (PS3.7 Annex E) encoded as dcmjs-dimse would', () => {
  it('C-ECHO, C-STORE, C-FIND responses', () => {
    const cases: Cmd[] = [
      response(new CEchoResponse(0x0000, undefined as unknown as string), '1.2.840.10008.1.1'),
      response(new CFindResponse(0x0000, undefined as unknown as string), '1.2.840.10008.5.1.4.1.2.2.1'),
    ];
    // Odd-length UID: NUL padding (PS3.5 §6.2).
    const store = response(new CStoreResponse(0xa700, undefined as unknown as string), '1.2.840.10008.5.1.4.1.1.2');
    (store as unknown as { setAffectedSopInstanceUid(u: string): void }).setAffectedSopInstanceUid('1.2.3.45');
    store.getCommandDataset().setElement('ErrorComment', 'out-of-resources'); // LO, even
    cases.push(store);
    const odd = response(new CStoreResponse(0xc000, undefined as unknown as string), '1.2.840.10008.5.1.4.1.1.2');
    odd.getCommandDataset().setElement('ErrorComment', 'cannot-understand'); // LO, odd: space padding
    cases.push(odd);
    for (const c of cases) expect(ours(c)!.toString('hex')).toBe(dcmjsBytes(c).toString('hex'));
  });

  it('C-GET and C-MOVE pending and final responses with sub-operation counts', () => {
    for (const R of [CGetResponse, CMoveResponse]) {
      const pending = response(new R(0xff00, undefined as unknown as string), '1.2.840.10008.5.1.4.1.2.2.3');
      const cmd = (pending as unknown as Cmd).getCommandDataset();
      cmd.setElement('NumberOfRemainingSuboperations', 99);
      cmd.setElement('NumberOfCompletedSuboperations', 65535);
      cmd.setElement('NumberOfFailedSuboperations', 0);
      cmd.setElement('NumberOfWarningSuboperations', 1);
      expect(ours(pending)!.toString('hex')).toBe(dcmjsBytes(pending).toString('hex'));
      const final = response(new R(0xb000, undefined as unknown as string), '1.2.840.10008.5.1.4.1.2.2.3');
      const fc = (final as unknown as Cmd).getCommandDataset();
      fc.setElement('NumberOfCompletedSuboperations', 3);
      fc.setElement('NumberOfFailedSuboperations', 2);
      fc.setElement('NumberOfWarningSuboperations', 0);
      expect(ours(final)!.toString('hex')).toBe(dcmjsBytes(final).toString('hex'));
    }
  });

  it('the C-STORE-RQ of a sub-operation, with and without the C-MOVE originator', () => {
    for (const originator of [undefined, { aeTitle: 'VIEWER', messageId: 12 }, { aeTitle: 'ODD', messageId: 1 }]) {
      const rq = new CStoreRequest(undefined as unknown as string);
      rq.setAffectedSopClassUid('1.2.840.10008.5.1.4.1.1.4');
      rq.setAffectedSopInstanceUid('2.25.123456789012345678901234567890123');
      rq.setMessageId(513);
      const cmd = (rq as unknown as Cmd).getCommandDataset();
      cmd.setElement('Priority', 0);
      cmd.setElement('CommandDataSetType', 0x0000);
      if (originator) {
        cmd.setElement('MoveOriginatorApplicationEntityTitle', originator.aeTitle);
        cmd.setElement('MoveOriginatorMessageID', originator.messageId);
      }
      const encoded = encodeCommandSet({
        CommandField: 0x0001,
        AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
        MessageID: 513,
        Priority: 0,
        CommandDataSetType: 0x0000,
        AffectedSOPInstanceUID: '2.25.123456789012345678901234567890123',
        MoveOriginatorApplicationEntityTitle: originator?.aeTitle,
        MoveOriginatorMessageID: originator?.messageId,
      });
      expect(encoded!.toString('hex')).toBe(cmd.getDenaturalizedCommandDataset().toString('hex'));
    }
  });

  it('leaves what it does not know to dcmjs: unknown keywords, non-integers, out-of-range numbers', () => {
    expect(encodeCommandSet({ CommandField: 1, OffendingElement: [0x00100010] })).toBeUndefined();
    expect(encodeCommandSet({ CommandField: 1.5 })).toBeUndefined();
    expect(encodeCommandSet({ MessageID: 0x10000 })).toBeUndefined();
    expect(encodeCommandSet({ AffectedSOPClassUID: 5 })).toBeUndefined();
  });

  it('reads a C-STORE-RSP as dcmjs writes it; malformed command sets are refused, not guessed', () => {
    const rsp = response(new CStoreResponse(0xb007, undefined as unknown as string), '1.2.840.10008.5.1.4.1.1.2');
    const bytes = dcmjsBytes(rsp);
    const el = decodeCommandSet(bytes)!;
    expect(readUs(el, CommandTag.CommandField)).toBe(0x8001);
    expect(readUs(el, CommandTag.Status)).toBe(0xb007);
    expect(readUs(el, CommandTag.MessageIDBeingRespondedTo)).toBe(7);
    expect(readUs(el, CommandTag.CommandDataSetType)).toBe(NO_DATA_SET);
    // An element length running past the end, a truncated header, another group.
    const overrun = Buffer.from(bytes);
    overrun.writeUInt32LE(0xfffffff0, 4);
    expect(decodeCommandSet(overrun)).toBeUndefined();
    expect(decodeCommandSet(bytes.subarray(0, bytes.length - 3))).toBeUndefined();
    const otherGroup = Buffer.from(bytes);
    otherGroup.writeUInt16LE(0x0008, 12);
    expect(decodeCommandSet(otherGroup)).toBeUndefined();
    // A US element of the wrong size is not read as a number.
    expect(readUs(new Map([[CommandTag.Status, Buffer.from([1, 2, 3])]]), CommandTag.Status)).toBeUndefined();
  });
});

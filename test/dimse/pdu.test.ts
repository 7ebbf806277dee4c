// Strict A-ASSOCIATE-RQ and P-DATA-TF parsing (src/dimse/pdu.ts, PS3.8 §9.3).
import { describe, expect, it } from 'vitest';
import { parseAssociateRq, parsePdvs, PduError } from '../../src/dimse/protocol/pdu.js';
import { associateRq, UID, type RawRq } from '../helpers/dimse-raw.js';

const ctx = (id: number, as: string = UID.Verification) => ({ id, abstractSyntax: as, transferSyntaxes: [UID.ImplicitLE as string] });
const body = (rq: RawRq) => associateRq(rq).subarray(6);
const reason = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return e instanceof PduError ? e.reason : String(e);
  }
};

describe('parseAssociateRq', () => {
  it('reads AE titles, contexts in proposal order with their own IDs, roles and user identity as raw bytes', () => {
    const rq = parseAssociateRq(body({
      callingAe: ' CT01  ',
      contexts: [ctx(5), ctx(1, UID.CtStorage)],
      roles: [{ abstractSyntax: UID.CtStorage, scu: false, scp: true }],
      userIdentity: { type: 2, primary: 'jörg', secondary: Buffer.from('pass word  \0'), positive: true },
      maxPdu: 0,
    }));
    expect(rq.callingAe).toBe('CT01');
    expect(rq.calledAe).toBe('TRESOR');
    expect(rq.contexts.map((c) => c.id)).toEqual([5, 1]);
    expect(rq.roles.get(UID.CtStorage)).toEqual({ scu: false, scp: true });
    expect(rq.userIdentity).toEqual({ type: 2, positiveResponseRequested: true, primary: Buffer.from('jörg'), secondary: Buffer.from('pass word  \0') });
    expect(rq.maxPduLength).toBe(0);
  });

  it('refuses what does not add up', () => {
    expect(reason(() => parseAssociateRq(body({ callingAe: 'A', contexts: [ctx(2)] })))).toMatch(/presentation context id/);
    expect(reason(() => parseAssociateRq(body({ callingAe: 'A', contexts: [ctx(1), ctx(1)] })))).toMatch(/duplicate/);
    expect(reason(() => parseAssociateRq(body({ callingAe: '                ', contexts: [ctx(1)] })))).toMatch(/calling AE/);
    expect(reason(() => parseAssociateRq(body({ callingAe: 'A', contexts: [{ id: 1, abstractSyntax: '1.2.x', transferSyntaxes: ['1.2'] }] })))).toMatch(/abstract syntax/);
    const full = body({ callingAe: 'A', contexts: [ctx(1)] });
    expect(reason(() => parseAssociateRq(full.subarray(0, full.length - 3)))).toMatch(/truncated/);
    const noUserInfo = full.subarray(0, full.indexOf(Buffer.from([0x50, 0x00])));
    expect(reason(() => parseAssociateRq(noUserInfo))).toMatch(/user information/);
  });
});

describe('parsePdvs', () => {
  it('splits PDVs and refuses lengths that do not fit', () => {
    const pdv = (pc: number, mch: number, v: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, v.length + 2, pc, mch]), v]);
    const two = Buffer.concat([pdv(1, 3, Buffer.from('ab')), pdv(3, 0, Buffer.from('cdef'))]);
    expect(parsePdvs(two).map((p) => [p.pcId, p.command, p.last, p.valueLength])).toEqual([[1, true, true, 2], [3, false, false, 4]]);
    expect(reason(() => parsePdvs(Buffer.from([0, 0, 0, 1, 1, 3])))).toMatch(/PDV length/);
    expect(reason(() => parsePdvs(Buffer.from([0, 0, 0, 9, 1, 3, 0])))).toMatch(/PDV length/);
    expect(reason(() => parsePdvs(pdv(1, 0x10, Buffer.from('ab'))))).toMatch(/control header/);
    expect(reason(() => parsePdvs(Buffer.alloc(0)))).toMatch(/empty/);
  });
});

// Rewrites the User Information item (PS3.8 §9.3.2.3 / §9.3.3.3) of an
// A-ASSOCIATE-RQ or -AC that the edge relays. Two sub-items change, nothing else:
//  - Maximum Length (PS3.8 §D.1) becomes min(announced, the edge's limit), because the
//    edge is the receiver of every P-DATA-TF and enforces its own limit on both sides;
//  - in a request, the Implementation Version Name (PS3.7 §D.3.3.2.3) carries the
//    edge's name (announce.ts).
// The request was already parsed strictly (pdu.ts); the AC comes from Tresor or a
// device's storage SCP, so every length is checked here before it is trusted.

import { PduError, PduType } from '../dimse/protocol/pdu.js';

/** PDU header (6) + protocol version, reserved, called AE, calling AE, reserved (PS3.8 Table 9-11). */
const FIXED = 6 + 2 + 2 + 16 + 16 + 32;

interface SubItem {
  type: number;
  value: Buffer;
}

function item(type: number, value: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUInt16BE(value.length, 2);
  return Buffer.concat([h, value]);
}

function readItems(buf: Buffer, start: number, end: number, what: string): { type: number; value: Buffer }[] {
  const out: { type: number; value: Buffer }[] = [];
  let off = start;
  while (off < end) {
    if (off + 4 > end) throw new PduError(`truncated ${what}`);
    const len = buf.readUInt16BE(off + 2);
    if (off + 4 + len > end) throw new PduError(`truncated ${what}`);
    out.push({ type: buf[off], value: buf.subarray(off + 4, off + 4 + len) });
    off += 4 + len;
  }
  return out;
}

export interface UserInfoEdit {
  /** The largest P-DATA-TF the edge accepts from the other side. */
  maxPduBytes: number;
  /** Replaces (or adds) the Implementation Version Name. */
  implementationVersion?: string;
}

/** A copy of the A-ASSOCIATE-RQ/AC `pdu` (header included) with its user information edited. */
export function editUserInformation(pdu: Buffer, edit: UserInfoEdit): Buffer {
  if ((pdu[0] !== PduType.AssociateRq && pdu[0] !== PduType.AssociateAc) || pdu.length < FIXED || pdu.readUInt32BE(2) !== pdu.length - 6) {
    throw new PduError('not an A-ASSOCIATE-RQ/AC');
  }
  const items = readItems(pdu, FIXED, pdu.length, 'item');
  const ui = items.filter((i) => i.type === 0x50);
  if (ui.length !== 1) throw new PduError('no single user information item');
  const subs: SubItem[] = readItems(ui[0].value, 0, ui[0].value.length, 'user information sub-item');
  const max = subs.find((s) => s.type === 0x51);
  if (!max || max.value.length !== 4) throw new PduError('no maximum length item');
  const announced = max.value.readUInt32BE(0);
  const limited = Buffer.alloc(4);
  // 0 = no limit announced (PS3.8 §D.1): the edge's limit applies.
  limited.writeUInt32BE(announced === 0 ? edit.maxPduBytes : Math.min(announced, edit.maxPduBytes), 0);
  max.value = limited;
  if (edit.implementationVersion !== undefined) {
    const v = Buffer.from(edit.implementationVersion, 'latin1');
    const existing = subs.find((s) => s.type === 0x55);
    if (existing) existing.value = v;
    else {
      // After the Implementation Class UID (PS3.7 §D.3.3.2: the class UID, then the version name).
      const at = subs.findIndex((s) => s.type === 0x52);
      subs.splice(at < 0 ? subs.length : at + 1, 0, { type: 0x55, value: v });
    }
  }
  const newUi = item(0x50, Buffer.concat(subs.map((s) => item(s.type, s.value))));
  if (newUi.length - 4 > 0xffff) throw new PduError('user information item too long');
  const body = Buffer.concat([pdu.subarray(6, FIXED), ...items.map((i) => (i.type === 0x50 ? newUi : item(i.type, i.value)))]);
  const head = Buffer.alloc(6);
  head[0] = pdu[0];
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

/** The Maximum Length announced in an A-ASSOCIATE-RQ/AC (0 = none), for tests and logs. */
export function announcedMaxLength(pdu: Buffer): number {
  const items = readItems(pdu, FIXED, pdu.length, 'item');
  const ui = items.find((i) => i.type === 0x50);
  const max = ui && readItems(ui.value, 0, ui.value.length, 'sub-item').find((s) => s.type === 0x51);
  return max && max.value.length === 4 ? max.value.readUInt32BE(0) : 0;
}

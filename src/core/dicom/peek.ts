// The SOP Instance UID and Study Instance UID of an object from its first bytes alone,
// while the rest is still arriving (issue 13: a C-STORE's database lookup then runs
// beside its transfer). Only a hint: the full parse (parse.ts, walk.ts) decides, and
// the ingest compares its UIDs with these before using anything looked up with them.
// So this reader never throws and gives up (undefined) on anything it does not expect:
// an element or sequence item that runs past the bytes it has, a big-endian or deflated
// data set, nesting deeper than a real object's.
//
// Top-level elements are walked in tag order (PS3.5 §7.1: a data set is sorted by tag),
// so the walk stops at the first tag past (0020,000D). Sequences of undefined length are
// skipped item by item (PS3.5 §7.5.2), undefined-length UN as implicit VR (§6.2.2).

import { datasetOffsetFromGroupLength, readFileMeta } from './part10.js';
import { TS } from './transfer-syntaxes.js';
import { LONG_LENGTH_VRS } from './vr.js';

const UNDEFINED = 0xffffffff;
const MAX_DEPTH = 16;
const SOP_INSTANCE_UID = 0x00080018;
const STUDY_INSTANCE_UID = 0x0020000d;

/** Gives up the walk: the bytes end, or something is not as expected. */
class GiveUp extends Error {}

export function peekInstanceUids(head: Buffer): { studyUid: string; sopInstanceUid: string } | undefined {
  try {
    const start = datasetOffsetFromGroupLength(head);
    if (start === undefined || start > head.length) return undefined;
    const ts = readFileMeta(head.subarray(0, start), start)?.transferSyntaxUid;
    if (!ts || ts === TS.deflatedExplicitLittle || ts === TS.explicitBig) return undefined;
    return scan(head, start, ts !== TS.implicitLittle);
  } catch {
    return undefined;
  }
}

function scan(b: Buffer, start: number, explicit: boolean): { studyUid: string; sopInstanceUid: string } | undefined {
  const need = (pos: number, n: number) => {
    if (pos + n > b.length) throw new GiveUp();
  };
  const text = (pos: number, len: number) => b.toString('latin1', pos, pos + len).replace(/[\0 ]+$/, '');

  /** The element at `pos`: its tag, where its value starts, its length. */
  function header(pos: number, isExplicit: boolean): { tag: number; vr?: string; valuePos: number; length: number } {
    need(pos, 8);
    const tag = ((b.readUInt16LE(pos) << 16) | b.readUInt16LE(pos + 2)) >>> 0;
    if (tag >>> 16 === 0xfffe || !isExplicit) return { tag, valuePos: pos + 8, length: b.readUInt32LE(pos + 4) };
    const vr = b.toString('latin1', pos + 4, pos + 6);
    if (LONG_LENGTH_VRS.has(vr)) {
      need(pos, 12);
      return { tag, vr, valuePos: pos + 12, length: b.readUInt32LE(pos + 8) };
    }
    return { tag, vr, valuePos: pos + 8, length: b.readUInt16LE(pos + 6) };
  }

  /** Skips an undefined-length sequence's items up to its delimiter; returns the position after it. */
  function skipSequence(pos: number, isExplicit: boolean, depth: number): number {
    if (depth > MAX_DEPTH) throw new GiveUp();
    for (;;) {
      const h = header(pos, false);
      if (h.tag === 0xfffee0dd) return h.valuePos; // Sequence Delimitation Item
      if (h.tag !== 0xfffee000) throw new GiveUp();
      pos = h.length === UNDEFINED ? skipItem(h.valuePos, isExplicit, depth + 1) : h.valuePos + h.length;
    }
  }

  /** Skips an undefined-length item's elements up to its delimiter. */
  function skipItem(pos: number, isExplicit: boolean, depth: number): number {
    for (;;) {
      const h = header(pos, isExplicit);
      if (h.tag === 0xfffee00d) return h.valuePos; // Item Delimitation Item
      pos = skipValue(h, isExplicit, depth);
    }
  }

  function skipValue(h: { vr?: string; valuePos: number; length: number }, isExplicit: boolean, depth: number): number {
    if (h.length !== UNDEFINED) return h.valuePos + h.length;
    if (!isExplicit || h.vr === 'SQ') return skipSequence(h.valuePos, isExplicit, depth);
    if (h.vr === 'UN') return skipSequence(h.valuePos, false, depth);
    throw new GiveUp();
  }

  let sopInstanceUid: string | undefined;
  let pos = start;
  for (;;) {
    const h = header(pos, explicit);
    if (h.tag > STUDY_INSTANCE_UID) return undefined;
    if (h.tag === SOP_INSTANCE_UID || h.tag === STUDY_INSTANCE_UID) {
      if (h.length === UNDEFINED) return undefined;
      need(h.valuePos, h.length);
      const uid = text(h.valuePos, h.length);
      if (h.tag === SOP_INSTANCE_UID) sopInstanceUid = uid;
      else return sopInstanceUid ? { studyUid: uid, sopInstanceUid } : undefined;
    }
    pos = skipValue(h, explicit, 0);
  }
}

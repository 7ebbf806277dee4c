// DIMSE command sets (PS3.7 §6.3, Annex E): group 0000 elements, always Implicit VR
// Little Endian, CommandGroupLength first. A retrieve sends a C-STORE-RQ and a pending
// C-GET/C-MOVE-RSP per instance and receives a C-STORE-RSP per instance; dcmjs-dimse
// builds each through dcmjs's general data-set writer and reader, and formats a log
// line for each even when logging is off — about 4 ms of CPU per retrieved instance
// (profiled, issue 13 item 2), more than the TLS encryption of a 0.5 MB object. The
// command group is a fixed, small vocabulary, so it is encoded and read here directly.
// Anything outside it (an AT element, a data set to attach) still goes through
// dcmjs-dimse.

/** Command-set keywords (dcmjs's naturalized names) → tag and VR (PS3.7 Annex E, Table E.1-1). */
const ELEMENTS: Record<string, { tag: number; vr: 'UL' | 'US' | 'UI' | 'AE' | 'LO' }> = {
  CommandGroupLength: { tag: 0x0000, vr: 'UL' },
  AffectedSOPClassUID: { tag: 0x0002, vr: 'UI' },
  RequestedSOPClassUID: { tag: 0x0003, vr: 'UI' },
  CommandField: { tag: 0x0100, vr: 'US' },
  MessageID: { tag: 0x0110, vr: 'US' },
  MessageIDBeingRespondedTo: { tag: 0x0120, vr: 'US' },
  MoveDestination: { tag: 0x0600, vr: 'AE' },
  Priority: { tag: 0x0700, vr: 'US' },
  CommandDataSetType: { tag: 0x0800, vr: 'US' },
  Status: { tag: 0x0900, vr: 'US' },
  ErrorComment: { tag: 0x0902, vr: 'LO' },
  ErrorID: { tag: 0x0903, vr: 'US' },
  AffectedSOPInstanceUID: { tag: 0x1000, vr: 'UI' },
  RequestedSOPInstanceUID: { tag: 0x1001, vr: 'UI' },
  EventTypeID: { tag: 0x1002, vr: 'US' },
  ActionTypeID: { tag: 0x1008, vr: 'US' },
  NumberOfRemainingSuboperations: { tag: 0x1020, vr: 'US' },
  NumberOfCompletedSuboperations: { tag: 0x1021, vr: 'US' },
  NumberOfFailedSuboperations: { tag: 0x1022, vr: 'US' },
  NumberOfWarningSuboperations: { tag: 0x1023, vr: 'US' },
  MoveOriginatorApplicationEntityTitle: { tag: 0x1030, vr: 'AE' },
  MoveOriginatorMessageID: { tag: 0x1031, vr: 'US' },
};

/** Element numbers (group 0000) of what is read back from a command set. */
export const CommandTag = {
  CommandField: ELEMENTS.CommandField.tag,
  MessageIDBeingRespondedTo: ELEMENTS.MessageIDBeingRespondedTo.tag,
  CommandDataSetType: ELEMENTS.CommandDataSetType.tag,
  Status: ELEMENTS.Status.tag,
};

/** PS3.7 §E.1: CommandDataSetType 0x0101 = no data set follows. */
export const NO_DATA_SET = 0x0101;

/**
 * Encodes a command set from naturalized elements (undefined values left out), or
 * returns undefined when an element is outside the table (the caller then uses dcmjs).
 */
export function encodeCommandSet(elements: Record<string, unknown>): Buffer | undefined {
  const items: { tag: number; value: Buffer }[] = [];
  for (const [keyword, v] of Object.entries(elements)) {
    if (v === undefined || keyword === 'CommandGroupLength') continue;
    const def = ELEMENTS[keyword];
    if (!def) return undefined;
    let value: Buffer;
    if (def.vr === 'US' || def.vr === 'UL') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > (def.vr === 'US' ? 0xffff : 0xffffffff)) return undefined;
      value = Buffer.alloc(def.vr === 'US' ? 2 : 4);
      if (def.vr === 'US') value.writeUInt16LE(v);
      else value.writeUInt32LE(v);
    } else {
      if (typeof v !== 'string') return undefined;
      const text = Buffer.from(v, 'latin1');
      // PS3.5 §6.2: UI values are padded with NUL to an even length, text values with a space.
      value = text.length % 2 ? Buffer.concat([text, Buffer.from(def.vr === 'UI' ? [0] : [0x20])]) : text;
    }
    items.push({ tag: def.tag, value });
  }
  // PS3.5 §7.1: elements in ascending tag order.
  items.sort((a, b) => a.tag - b.tag);
  const groupLength = items.reduce((n, i) => n + 8 + i.value.length, 0);
  const out = Buffer.allocUnsafe(12 + groupLength);
  out.writeUInt32LE(0x00000000, 0); // (0000,0000)
  out.writeUInt32LE(4, 4);
  out.writeUInt32LE(groupLength, 8);
  let off = 12;
  for (const { tag, value } of items) {
    out.writeUInt16LE(0x0000, off);
    out.writeUInt16LE(tag, off + 2);
    out.writeUInt32LE(value.length, off + 4);
    value.copy(out, off + 8);
    off += 8 + value.length;
  }
  return out;
}

/**
 * Reads a command set's elements (element number → value bytes), or undefined when it
 * is not a well-formed Implicit VR Little Endian group 0000 (the caller then leaves it
 * to dcmjs-dimse, which answers malformed input as before).
 */
export function decodeCommandSet(bytes: Buffer): Map<number, Buffer> | undefined {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off < bytes.length) {
    if (off + 8 > bytes.length) return undefined;
    const group = bytes.readUInt16LE(off);
    const element = bytes.readUInt16LE(off + 2);
    const length = bytes.readUInt32LE(off + 4);
    if (group !== 0x0000 || length > bytes.length - off - 8) return undefined;
    out.set(element, bytes.subarray(off + 8, off + 8 + length));
    off += 8 + length;
  }
  return out;
}

/** A US element's value, if it is one. */
export function readUs(elements: Map<number, Buffer>, tag: number): number | undefined {
  const v = elements.get(tag);
  return v && v.length === 2 ? v.readUInt16LE(0) : undefined;
}

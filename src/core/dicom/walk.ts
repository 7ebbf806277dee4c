// Structural check of a Part 10 dataset without loading it: walks every element
// header, item and fragment (PS3.5 §7.1, §7.5, §A.4) with positional reads, and
// refuses a file whose declared lengths run past its end or whose delimiters are
// missing. dcmjs alone accepts a truncated pixel data element (MR_truncated.dcm in
// pydicom's samples parses "fine"), so this walk is what guarantees that what we
// store is whole. It also finds where Pixel Data starts, so the attribute parse can
// stop before it and frames can later be served by offset.

import { invalid } from '../errors.js';
import { transferSyntax, TS } from './transfer-syntaxes.js';
import { LONG_LENGTH_VRS } from './vr.js';

export interface Fragment {
  offset: number;
  length: number;
}

export interface PixelDataLocation {
  /** Offset of the (7FE0,0010) element header in the file. */
  elementOffset: number;
  /** Offset of its value. */
  valueOffset: number;
  /** Value length for native pixel data; undefined for encapsulated. */
  length?: number;
  /** Encapsulated: every item after the Basic Offset Table, in order (at most MAX_FRAGMENTS recorded). */
  fragments?: Fragment[];
  /** Encapsulated: the Basic Offset Table item. */
  basicOffsetTable?: Fragment;
}

const UNDEFINED = 0xffffffff;
const MAX_DEPTH = 16;
const MAX_FRAGMENTS = 100_000;

/** What the walk reads from: a FileHandle, or anything with its positional read (a stored object's stream, a file with its head in memory). */
export interface PositionalSource {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

class PositionalReader {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  constructor(
    private readonly fh: PositionalSource,
    readonly size: number,
    /** The file's first bytes, when the caller has them in memory: no file read for what lies within. */
    private readonly head?: Buffer,
  ) {}

  async read(pos: number, n: number): Promise<Buffer> {
    if (pos < 0 || pos + n > this.size) throw invalid('truncated', 'The DICOM object ends in the middle of an element.');
    if (this.head && pos + n <= this.head.length) return this.head.subarray(pos, pos + n);
    if (pos < this.windowStart || pos + n > this.windowStart + this.window.length) {
      const len = Math.min(65536, this.size - pos);
      const buf = Buffer.alloc(len);
      const { bytesRead } = await this.fh.read(buf, 0, len, pos);
      this.window = buf.subarray(0, bytesRead);
      this.windowStart = pos;
      if (bytesRead < n) throw invalid('truncated', 'The DICOM object ends in the middle of an element.');
    }
    return this.window.subarray(pos - this.windowStart, pos - this.windowStart + n);
  }
}

interface Header {
  group: number;
  element: number;
  vr?: string;
  length: number;
  headerLength: number;
}

export interface WalkOptions {
  /** The file's first bytes, when the caller has them in memory: no file read for what lies within. */
  head?: Buffer;
  /**
   * Called with each top-level element's tag (group << 16 | element), value offset and
   * length (0xFFFFFFFF: undefined) before the walk checks or skips its value;
   * returning true ends the walk there (core/dicom/peek.ts reads two UIDs this way).
   */
  visitTopLevel?: (tag: number, valuePos: number, length: number) => boolean;
}

export async function walkDataset(fh: PositionalSource, size: number, start: number, transferSyntaxUid: string, opts: WalkOptions = {}): Promise<{ pixelData?: PixelDataLocation }> {
  if (transferSyntaxUid === TS.deflatedExplicitLittle) throw new Error('walkDataset: deflated datasets are checked by inflating them');
  const r = new PositionalReader(fh, size, opts.head);
  // Unknown syntaxes are read as explicit VR little endian, like every compressed one.
  const little = transferSyntax(transferSyntaxUid)?.littleEndian ?? true;
  let pixelData: PixelDataLocation | undefined;

  const u16 = (b: Buffer, o: number) => (little ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (little ? b.readUInt32LE(o) : b.readUInt32BE(o));

  async function header(pos: number, explicit: boolean): Promise<Header> {
    const b = await r.read(pos, 8);
    const group = u16(b, 0);
    const element = u16(b, 2);
    // Items and delimiters (group FFFE) never carry a VR (PS3.5 §7.5).
    if (group === 0xfffe || !explicit) return { group, element, length: u32(b, 4), headerLength: 8 };
    const vr = b.toString('latin1', 4, 6);
    if (LONG_LENGTH_VRS.has(vr)) {
      const l = await r.read(pos + 8, 4);
      return { group, element, vr, length: u32(l, 0), headerLength: 12 };
    }
    return { group, element, vr, length: u16(b, 6), headerLength: 8 };
  }

  /** Walks elements from `pos` up to `end`, or up to an item delimiter when `end` is undefined. */
  async function elements(pos: number, end: number | undefined, explicit: boolean, depth: number): Promise<number> {
    if (depth > MAX_DEPTH) throw invalid('too-deep', 'Sequences are nested too deeply.');
    const limit = end ?? size;
    for (;;) {
      if (end !== undefined && pos === end) return pos;
      if (pos >= limit) throw invalid('truncated', 'The DICOM object ends inside a sequence item.');
      const h = await header(pos, explicit);
      if (h.group === 0xfffe) {
        if (h.element === 0xe00d && end === undefined) return pos + 8; // Item Delimitation Item
        throw invalid('malformed', 'Unexpected item or delimiter in a dataset.');
      }
      const valuePos = pos + h.headerLength;
      if (depth === 0 && opts.visitTopLevel?.(((h.group << 16) | h.element) >>> 0, valuePos, h.length)) return pos;
      const isPixelData = depth === 0 && h.group === 0x7fe0 && h.element === 0x0010;
      if (h.length === UNDEFINED) {
        if (isPixelData) {
          pixelData = { elementOffset: pos, valueOffset: valuePos, fragments: [] };
          pos = await fragments(valuePos, pixelData);
        } else if (!explicit || h.vr === 'SQ' || h.vr === 'UN') {
          // Undefined-length UN holds a sequence encoded implicit VR little endian (PS3.5 §6.2.2).
          pos = await sequence(valuePos, undefined, explicit && h.vr === 'SQ', depth + 1);
        } else {
          throw invalid('malformed', 'Undefined length on an element that cannot have one.');
        }
      } else {
        if (valuePos + h.length > limit) throw invalid('truncated', 'An element is longer than the data that follows it.');
        if (isPixelData) pixelData = { elementOffset: pos, valueOffset: valuePos, length: h.length };
        pos = valuePos + h.length;
      }
    }
  }

  async function sequence(pos: number, end: number | undefined, explicit: boolean, depth: number): Promise<number> {
    for (;;) {
      if (end !== undefined && pos === end) return pos;
      const h = await header(pos, false);
      if (h.group !== 0xfffe) throw invalid('malformed', 'A sequence holds something that is not an item.');
      if (h.element === 0xe0dd) return pos + 8; // Sequence Delimitation Item
      if (h.element !== 0xe000) throw invalid('malformed', 'Unknown delimiter in a sequence.');
      const itemPos = pos + 8;
      if (h.length === UNDEFINED) pos = await elements(itemPos, undefined, explicit, depth);
      else {
        if (itemPos + h.length > (end ?? size)) throw invalid('truncated', 'A sequence item is longer than the data that follows it.');
        pos = await elements(itemPos, itemPos + h.length, explicit, depth);
      }
    }
  }

  async function fragments(pos: number, pd: PixelDataLocation): Promise<number> {
    let first = true;
    for (;;) {
      const h = await header(pos, false);
      if (h.group !== 0xfffe) throw invalid('malformed', 'Encapsulated pixel data holds something that is not an item.');
      if (h.element === 0xe0dd) return pos + 8;
      if (h.element !== 0xe000 || h.length === UNDEFINED) throw invalid('malformed', 'Bad fragment in encapsulated pixel data.');
      const valuePos = pos + 8;
      if (valuePos + h.length > size) throw invalid('truncated', 'A pixel data fragment runs past the end of the object.');
      if (first) pd.basicOffsetTable = { offset: valuePos, length: h.length };
      else if (pd.fragments!.length < MAX_FRAGMENTS) pd.fragments!.push({ offset: valuePos, length: h.length });
      first = false;
      pos = valuePos + h.length;
    }
  }

  const explicit = transferSyntax(transferSyntaxUid)?.explicitVr ?? true;
  await elements(start, size, explicit, 0);
  return { pixelData };
}

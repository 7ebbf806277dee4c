// Reads what ingest needs from a Part 10 file on disk, in bounded memory:
// the File Meta Information, a structural walk of the whole dataset (walk.ts),
// and the attributes before Pixel Data parsed with dcmjs. Pixel data and
// anything after it are never loaded here.

import fs, { type FileHandle } from 'node:fs/promises';
import dcmjs from './dcmjs.js';
import { toArrayBuffer } from '../../lib/array-buffer.js';
import { invalid, tooLarge } from '../errors.js';
import { datasetOffsetFromGroupLength, FILE_META_START, MAX_FILE_META_BYTES, PREAMBLE_LENGTH, readFileMeta } from './part10.js';
import { inflatePart10, MAX_INFLATED_BYTES, MAX_INFLATED_ELEMENTS, MAX_INFLATED_VALUE_BYTES } from './inflate.js';
import { TS } from './transfer-syntaxes.js';
import { walkDataset, type PixelDataLocation } from './walk.js';
import { NOTHING_BEYOND } from './peek.js';

/** Attributes before Pixel Data larger than this are refused (they would be held in memory). */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024;
/** Deflated datasets are inflated in memory to be checked; keep them small. */
export const MAX_DEFLATED_BYTES = 64 * 1024 * 1024;

export interface ParsedObject {
  size: number;
  preamble: Buffer;
  /** dcmjs dictionaries (tag → {vr, Value}). */
  meta: Record<string, any>;
  dict: Record<string, any>;
  transferSyntaxUid: string;
  /** Offset where the dataset (after group 0002) starts. */
  datasetOffset: number;
  pixelData?: PixelDataLocation;
  /** True when the character set could not be fully decoded (e.g. ISO 2022 multi-byte). */
  charsetFallback: boolean;
}

function readWithDcmjs(buf: Buffer): { meta: Record<string, any>; dict: Record<string, any>; charsetFallback: boolean } {
  try {
    const d = dcmjs.data.DicomMessage.readFile(toArrayBuffer(buf));
    return { meta: d.meta, dict: d.dict, charsetFallback: false };
  } catch {
    // dcmjs refuses several ISO 2022 character sets and some odd encodings; with
    // ignoreErrors it reads what it can (first character set only). The structure
    // was already checked by walk.ts and the stored bytes stay exact; only the
    // indexing is approximate, and ingest reports it as a warning.
    try {
      const d = dcmjs.data.DicomMessage.readFile(toArrayBuffer(buf), { ignoreErrors: true });
      return { meta: d.meta, dict: d.dict, charsetFallback: true };
    } catch {
      throw invalid('unreadable', 'The DICOM dataset could not be parsed.');
    }
  }
}

/** The attributes before Pixel Data, read from an object's first bytes alone (parseHead). */
export interface ParsedHead extends Pick<ParsedObject, 'meta' | 'dict' | 'charsetFallback'> {
  /** The bytes they were read from: the file's first `headerEnd` bytes, if it is the same object. */
  bytes: Buffer;
  /** Where the top-level Pixel Data element starts. */
  headerEnd: number;
}

const PIXEL_DATA = 0x7fe00010;

/**
 * Reads the attributes before Pixel Data from an object's first bytes, while the rest
 * (its pixel data) is still arriving, so that the parse after the last byte only walks
 * the structure (issue 13: the dcmjs read of a CT's header is most of the parse). Only a
 * head in which the top-level Pixel Data element starts; undefined otherwise, and for
 * anything unexpected (never throws). parsePart10File uses it only if the file's walk
 * puts Pixel Data at the same offset and the file starts with these bytes.
 */
export async function parseHead(head: Buffer): Promise<ParsedHead | undefined> {
  try {
    const start = datasetOffsetFromGroupLength(head);
    if (start === undefined || start > head.length) return undefined;
    const ts = readFileMeta(head.subarray(0, start), start)?.transferSyntaxUid;
    if (!ts || ts === TS.deflatedExplicitLittle) return undefined;
    let headerEnd: number | undefined;
    await walkDataset(NOTHING_BEYOND, head.length, start, ts, {
      head,
      visitTopLevel(tag, valuePos) {
        if (tag < PIXEL_DATA) return false;
        // Explicit VR: OB or OW, a 12-byte element header (PS3.5 §7.1.2); implicit: 8.
        if (tag === PIXEL_DATA) headerEnd = valuePos - (ts === TS.implicitLittle ? 8 : 12);
        return true;
      },
    });
    if (headerEnd === undefined || headerEnd < start) return undefined;
    const bytes = head.subarray(0, headerEnd);
    return { bytes, headerEnd, ...readWithDcmjs(bytes) };
  } catch {
    return undefined; // truncated within the head, malformed, unreadable: the full parse says why
  }
}

/**
 * `known`: what the spooler of the file saw while writing it, its size and its first bytes
 * (`head`), and maybe what parseHead read from them. Every read that lies within `head`
 * is served from memory; the file is opened only for the rest (for most objects nothing:
 * their attributes fit in the head and their pixel data ends the file). Each file call
 * costs two thread wake-ups (issue 13).
 */
export async function parsePart10File(path: string, known?: { size: number; head: Buffer; parsedHead?: ParsedHead }): Promise<ParsedObject> {
  const fh = new HeadFirstFile(path, known?.head);
  try {
    const size = known?.size ?? (await fh.size());
    const head = Buffer.alloc(Math.min(size, PREAMBLE_LENGTH + 4 + 12));
    await fh.read(head, 0, head.length, 0);
    if (size < PREAMBLE_LENGTH + 4 + 12 || head.toString('latin1', 128, 132) !== 'DICM') {
      throw invalid('not-part10', 'Not a DICOM Part 10 object (no "DICM" prefix).');
    }
    // PS3.10 §7.1: the meta group starts with (0002,0000) UL, explicit VR little endian.
    const datasetOffset = datasetOffsetFromGroupLength(head);
    if (datasetOffset === undefined) throw invalid('bad-meta', 'The File Meta Information has no group length.');
    if (datasetOffset - FILE_META_START - 12 > MAX_FILE_META_BYTES || datasetOffset > size) throw invalid('bad-meta', 'The File Meta Information is malformed.');
    const metaBuf = Buffer.alloc(datasetOffset);
    await fh.read(metaBuf, 0, datasetOffset, 0);
    const fileMeta = readFileMeta(metaBuf, datasetOffset);
    if (!fileMeta) throw invalid('bad-meta', 'The File Meta Information is malformed.');
    const transferSyntaxUid = fileMeta.transferSyntaxUid ?? '';
    if (!transferSyntaxUid) throw invalid('bad-meta', 'The File Meta Information has no Transfer Syntax UID.');

    let pixelData: PixelDataLocation | undefined;
    let headerEnd = size;
    if (transferSyntaxUid === TS.deflatedExplicitLittle) {
      if (size > MAX_DEFLATED_BYTES) throw tooLarge('deflated-too-large', 'Deflated objects above 64 MiB are not accepted.');
    } else {
      ({ pixelData } = await walkDataset(fh, size, datasetOffset, transferSyntaxUid, { head: known?.head }));
      if (pixelData) headerEnd = pixelData.elementOffset;
    }
    if (headerEnd > MAX_HEADER_BYTES) throw tooLarge('header-too-large', 'The attributes before the pixel data are too large.');
    const early = known?.parsedHead;
    if (early && pixelData && early.headerEnd === headerEnd && known!.head.length >= headerEnd && early.bytes.equals(known!.head.subarray(0, headerEnd))) {
      const { meta, dict, charsetFallback } = early;
      return { size, preamble: known!.head.subarray(0, PREAMBLE_LENGTH), meta, dict, transferSyntaxUid, datasetOffset, pixelData, charsetFallback };
    }
    let buf: Buffer = Buffer.alloc(headerEnd);
    await fh.read(buf, 0, headerEnd, 0);
    const deflated = transferSyntaxUid === TS.deflatedExplicitLittle;
    if (deflated) {
      // Inflated off the event loop and bounded (inflate.ts); dcmjs then reads explicit VR little endian.
      const c = await inflatePart10(buf, datasetOffset);
      if (!c.ok && c.why === 'too-large') throw tooLarge('deflated-too-large', `Deflated data sets that inflate to more than ${MAX_INFLATED_BYTES / (1024 * 1024)} MiB are not accepted; send the object uncompressed or in an encapsulated syntax.`);
      if (!c.ok && c.why === 'too-complex') throw tooLarge('deflated-too-large', `Deflated data sets with more than ${MAX_INFLATED_ELEMENTS} elements or ${MAX_INFLATED_VALUE_BYTES / (1024 * 1024)} MiB of non-binary values (or whose element headers are damaged) are not accepted; send the object uncompressed or in an encapsulated syntax.`);
      if (!c.ok) throw invalid('unreadable', 'The deflated data set is not a valid deflate stream.');
      buf = c.part10;
    }
    const { meta, dict, charsetFallback } = readWithDcmjs(buf);
    if (deflated && meta['00020010']) meta['00020010'].Value = [TS.deflatedExplicitLittle];
    return { size, preamble: buf.subarray(0, PREAMBLE_LENGTH), meta, dict, transferSyntaxUid, datasetOffset, pixelData, charsetFallback };
  } finally {
    await fh.close();
  }
}

/** Positional reads of a file, from `head` (its first bytes) where they lie within it. */
class HeadFirstFile {
  private fh?: FileHandle;
  constructor(
    private readonly path: string,
    private readonly head: Buffer | undefined,
  ) {}

  private async file(): Promise<FileHandle> {
    return (this.fh ??= await fs.open(this.path, 'r'));
  }

  async size(): Promise<number> {
    return (await (await this.file()).stat()).size;
  }

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number; buffer: Buffer }> {
    if (this.head && position + length <= this.head.length) {
      this.head.copy(buffer, offset, position, position + length);
      return { bytesRead: length, buffer };
    }
    return (await this.file()).read(buffer, offset, length, position);
  }

  async close(): Promise<void> {
    await this.fh?.close();
  }
}

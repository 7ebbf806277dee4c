// THE transfer-syntax registry (PS3.5 §10 and Annex A; UIDs from PS3.6 Table A-1).
// Both front doors read it: DIMSE negotiation (what a C-STORE may use), DIMSE
// retrieval and DICOMweb negotiation (what we can transcode from), the parser and
// the frame reader (byte order, explicit/implicit VR, encapsulation, deflate).
// A syntax that is not listed here is neither storable nor decodable.

export interface TransferSyntax {
  uid: string;
  name: string;
  /** Explicit VR (PS3.5 §7.1.2); false only for Implicit VR Little Endian. */
  explicitVr: boolean;
  littleEndian: boolean;
  /** Pixel data in fragments (PS3.5 §A.4); false for the native syntaxes. */
  encapsulated: boolean;
  /** The data set after group 0002 is a deflate stream (PS3.5 §A.5). */
  deflated: boolean;
  /**
   * Our transcoder can decode it: dcmjs-codecs 0.0.8's transfer syntax table, which
   * is also dcmjs-dimse 0.3.3's TranscodableTransferSyntaxes (both checked in
   * node_modules and against pydicom's samples).
   */
  decodable: boolean;
  /**
   * A C-STORE or STOW-RS may use it: we keep the received bytes exactly
   * (ARCHITECTURE.md rule 6), so every syntax whose data set is plain explicit or
   * implicit VR encoding is storable, compressed ones included. Not deflate (its
   * data set is a zlib stream the ingest parser would have to inflate) and not
   * JPIP (pixel data referenced elsewhere, PS3.5 §A.6).
   */
  storable: boolean;
}

type Flags = Partial<Omit<TransferSyntax, 'uid' | 'name'>>;

/** An encapsulated (compressed) explicit VR little endian syntax. */
function compressed(uid: string, name: string, flags: Flags = {}): TransferSyntax {
  return { uid, name, explicitVr: true, littleEndian: true, encapsulated: true, deflated: false, decodable: false, storable: true, ...flags };
}

export const TRANSFER_SYNTAXES: readonly TransferSyntax[] = Object.freeze([
  { uid: '1.2.840.10008.1.2', name: 'Implicit VR Little Endian', explicitVr: false, littleEndian: true, encapsulated: false, deflated: false, decodable: true, storable: true },
  { uid: '1.2.840.10008.1.2.1', name: 'Explicit VR Little Endian', explicitVr: true, littleEndian: true, encapsulated: false, deflated: false, decodable: true, storable: true },
  // dcmjs-codecs has no deflate entry: its Transcoder refuses image_dfl.dcm. We still
  // serve deflated objects (ingested through STOW) as stored, and read them inflated.
  { uid: '1.2.840.10008.1.2.1.99', name: 'Deflated Explicit VR Little Endian', explicitVr: true, littleEndian: true, encapsulated: false, deflated: true, decodable: false, storable: false },
  { uid: '1.2.840.10008.1.2.2', name: 'Explicit VR Big Endian (retired)', explicitVr: true, littleEndian: false, encapsulated: false, deflated: false, decodable: true, storable: true },
  compressed('1.2.840.10008.1.2.1.98', 'Encapsulated Uncompressed Explicit VR Little Endian'),
  compressed('1.2.840.10008.1.2.4.50', 'JPEG Baseline (Process 1)', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.51', 'JPEG Extended (Process 2 & 4)'),
  compressed('1.2.840.10008.1.2.4.57', 'JPEG Lossless, Non-Hierarchical (Process 14)'),
  compressed('1.2.840.10008.1.2.4.70', 'JPEG Lossless, First-Order Prediction (Process 14 SV1)', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.80', 'JPEG-LS Lossless', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.81', 'JPEG-LS Near-Lossless', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.90', 'JPEG 2000 (Lossless Only)', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.91', 'JPEG 2000', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.92', 'JPEG 2000 Part 2 Multi-component (Lossless Only)'),
  compressed('1.2.840.10008.1.2.4.93', 'JPEG 2000 Part 2 Multi-component'),
  compressed('1.2.840.10008.1.2.4.94', 'JPIP Referenced', { storable: false }),
  compressed('1.2.840.10008.1.2.4.95', 'JPIP Referenced Deflate', { deflated: true, storable: false }),
  compressed('1.2.840.10008.1.2.4.100', 'MPEG2 Main Profile @ Main Level'),
  compressed('1.2.840.10008.1.2.4.101', 'MPEG2 Main Profile @ High Level'),
  compressed('1.2.840.10008.1.2.4.102', 'MPEG-4 AVC/H.264 High Profile / Level 4.1'),
  compressed('1.2.840.10008.1.2.4.103', 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1'),
  compressed('1.2.840.10008.1.2.4.104', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video'),
  compressed('1.2.840.10008.1.2.4.105', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video'),
  compressed('1.2.840.10008.1.2.4.106', 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2'),
  compressed('1.2.840.10008.1.2.4.107', 'HEVC/H.265 Main Profile / Level 5.1'),
  compressed('1.2.840.10008.1.2.4.108', 'HEVC/H.265 Main 10 Profile / Level 5.1'),
  compressed('1.2.840.10008.1.2.4.110', 'JPEG XL Lossless', { decodable: true }),
  // Not in dcmjs-codecs' table (only lossless and lossy JPEG XL are).
  compressed('1.2.840.10008.1.2.4.111', 'JPEG XL JPEG Recompression'),
  compressed('1.2.840.10008.1.2.4.112', 'JPEG XL', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.201', 'High-Throughput JPEG 2000 (Lossless Only)', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.202', 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)', { decodable: true }),
  compressed('1.2.840.10008.1.2.4.203', 'High-Throughput JPEG 2000', { decodable: true }),
  compressed('1.2.840.10008.1.2.5', 'RLE Lossless', { decodable: true }),
].map((t) => Object.freeze(t)));

/** The UIDs the code names (one spelling, used by both doors). */
export const TS = {
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  deflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  explicitBig: '1.2.840.10008.1.2.2',
} as const;

const BY_UID: ReadonlyMap<string, TransferSyntax> = new Map(TRANSFER_SYNTAXES.map((t) => [t.uid, t]));

export function transferSyntax(uid: string): TransferSyntax | undefined {
  return BY_UID.get(uid);
}

const uidsWhere = (p: (t: TransferSyntax) => boolean): ReadonlySet<string> => new Set(TRANSFER_SYNTAXES.filter(p).map((t) => t.uid));

/** What a C-STORE presentation context (and so an ingested object) may use. */
export const STORABLE_TRANSFER_SYNTAXES = uidsWhere((t) => t.storable);
/** What we can transcode from, by either door (DICOMweb: dcmjs-codecs; DIMSE: dcmjs-dimse over the same codecs). */
export const DECODABLE_TRANSFER_SYNTAXES = uidsWhere((t) => t.decodable);
/** Native, not deflated: what we transcode to over DIMSE and send pixel data in without a codec. */
export const NATIVE_TRANSFER_SYNTAXES = uidsWhere((t) => !t.encapsulated && !t.deflated);

/**
 * Transfer syntaxes whose pixel data is encapsulated (PS3.5 §A.4): everything but
 * the native ones (deflated included). An unknown UID counts as encapsulated: it is
 * never treated as raw pixels.
 */
export function isEncapsulated(tsUid: string): boolean {
  return transferSyntax(tsUid)?.encapsulated ?? true;
}

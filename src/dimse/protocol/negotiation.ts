// Presentation context negotiation (PS3.8 §9.3.3.2, PS3.7 §D.3.3.4). What we accept
// does not depend on who asks: authorization happens per operation in the core.

import dimse from 'dcmjs-dimse';
import type { AssociateRq } from './pdu.js';

export const SopClass = {
  Verification: '1.2.840.10008.1.1',
  PatientRootFind: '1.2.840.10008.5.1.4.1.2.1.1',
  PatientRootMove: '1.2.840.10008.5.1.4.1.2.1.2',
  PatientRootGet: '1.2.840.10008.5.1.4.1.2.1.3',
  StudyRootFind: '1.2.840.10008.5.1.4.1.2.2.1',
  StudyRootMove: '1.2.840.10008.5.1.4.1.2.2.2',
  StudyRootGet: '1.2.840.10008.5.1.4.1.2.2.3',
} as const;

export const Ts = {
  ImplicitLittle: '1.2.840.10008.1.2',
  ExplicitLittle: '1.2.840.10008.1.2.1',
  Deflated: '1.2.840.10008.1.2.1.99',
  ExplicitBig: '1.2.840.10008.1.2.2',
} as const;

/**
 * Transfer syntaxes a C-STORE may use: we keep the received bytes exactly
 * (ARCHITECTURE.md rule 6), so every syntax whose dataset is plain explicit or
 * implicit VR encoding is storable, compressed ones included (PS3.5 Annex A,
 * PS3.6 Table A-1). Not deflate: its dataset is a zlib stream the ingest parser
 * would have to inflate, and JPIP-referenced pixel data lives elsewhere.
 */
export const STORABLE_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set([
  Ts.ImplicitLittle,
  Ts.ExplicitLittle,
  Ts.ExplicitBig,
  '1.2.840.10008.1.2.1.98', // Encapsulated Uncompressed Explicit VR Little Endian
  '1.2.840.10008.1.2.4.50', // JPEG Baseline (Process 1)
  '1.2.840.10008.1.2.4.51', // JPEG Extended (Process 2 & 4)
  '1.2.840.10008.1.2.4.57', // JPEG Lossless (Process 14)
  '1.2.840.10008.1.2.4.70', // JPEG Lossless SV1
  '1.2.840.10008.1.2.4.80', // JPEG-LS Lossless
  '1.2.840.10008.1.2.4.81', // JPEG-LS Near-Lossless
  '1.2.840.10008.1.2.4.90', // JPEG 2000 Lossless
  '1.2.840.10008.1.2.4.91', // JPEG 2000
  '1.2.840.10008.1.2.4.92', // JPEG 2000 Part 2 Multi-component Lossless
  '1.2.840.10008.1.2.4.93', // JPEG 2000 Part 2 Multi-component
  '1.2.840.10008.1.2.4.100', // MPEG2 MP@ML
  '1.2.840.10008.1.2.4.101', // MPEG2 MP@HL
  '1.2.840.10008.1.2.4.102', // MPEG-4 AVC/H.264 HP@4.1
  '1.2.840.10008.1.2.4.103', // MPEG-4 AVC/H.264 BD-compatible HP@4.1
  '1.2.840.10008.1.2.4.104', // MPEG-4 AVC/H.264 HP@4.2 2D
  '1.2.840.10008.1.2.4.105', // MPEG-4 AVC/H.264 HP@4.2 3D
  '1.2.840.10008.1.2.4.106', // MPEG-4 AVC/H.264 Stereo HP@4.2
  '1.2.840.10008.1.2.4.107', // HEVC/H.265 Main
  '1.2.840.10008.1.2.4.108', // HEVC/H.265 Main 10
  '1.2.840.10008.1.2.4.110', // JPEG XL Lossless
  '1.2.840.10008.1.2.4.111', // JPEG XL JPEG Recompression
  '1.2.840.10008.1.2.4.112', // JPEG XL
  '1.2.840.10008.1.2.4.201', // HTJ2K Lossless
  '1.2.840.10008.1.2.4.202', // HTJ2K Lossless RPCL
  '1.2.840.10008.1.2.4.203', // HTJ2K
  '1.2.840.10008.1.2.5', // RLE Lossless
]);

const KNOWN_STORAGE: ReadonlySet<string> = new Set(Object.values(dimse.constants.StorageClass as unknown as Record<string, string>));

/** Storage SOP classes: the PS3.4 Annex B arc plus the ones dcmjs-dimse lists. */
export function isStorageSopClass(uid: string): boolean {
  return uid.startsWith('1.2.840.10008.5.1.4.1.1.') || KNOWN_STORAGE.has(uid);
}

export type ServiceKind = 'verification' | 'find' | 'get' | 'move' | 'storage';

export function serviceKind(abstractSyntax: string): ServiceKind | undefined {
  switch (abstractSyntax) {
    case SopClass.Verification:
      return 'verification';
    case SopClass.PatientRootFind:
    case SopClass.StudyRootFind:
      return 'find';
    case SopClass.PatientRootGet:
    case SopClass.StudyRootGet:
      return 'get';
    case SopClass.PatientRootMove:
    case SopClass.StudyRootMove:
      return 'move';
    default:
      return isStorageSopClass(abstractSyntax) ? 'storage' : undefined;
  }
}

export const PcResult = {
  Accept: 0,
  UserRejection: 1,
  NoReason: 2,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

export interface NegotiatedContext {
  id: number;
  abstractSyntax: string;
  proposed: string[];
  result: number;
  /** The accepted transfer syntax (only when result is Accept). */
  transferSyntax?: string;
  kind?: ServiceKind;
  /** The requestor may act as SCP of this storage class: we may send C-STORE on it (C-GET). */
  requestorIsScp: boolean;
}

export function negotiateContexts(rq: AssociateRq): NegotiatedContext[] {
  return rq.contexts.map((pc) => {
    const kind = serviceKind(pc.abstractSyntax);
    const role = rq.roles.get(pc.abstractSyntax);
    const base = { id: pc.id, abstractSyntax: pc.abstractSyntax, proposed: pc.transferSyntaxes, kind, requestorIsScp: role?.scp === true };
    if (!kind) return { ...base, result: PcResult.AbstractSyntaxNotSupported };
    let ts: string | undefined;
    if (kind === 'storage') {
      // The requestor lists its preference first (and for an object it already holds
      // compressed, that is usually the syntax it holds): the first one we can keep.
      ts = pc.transferSyntaxes.find((t) => STORABLE_TRANSFER_SYNTAXES.has(t));
    } else {
      ts = [Ts.ExplicitLittle, Ts.ImplicitLittle].find((t) => pc.transferSyntaxes.includes(t));
    }
    if (!ts) return { ...base, result: PcResult.TransferSyntaxesNotSupported };
    return { ...base, result: PcResult.Accept, transferSyntax: ts };
  });
}

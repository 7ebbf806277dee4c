// Presentation context negotiation (PS3.8 §9.3.3.2, PS3.7 §D.3.3.4). What we accept
// does not depend on who asks: authorization happens per operation in the core.

import dimse from 'dcmjs-dimse';
import { STORABLE_TRANSFER_SYNTAXES, TS } from '../../core/dicom/transfer-syntaxes.js';
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
      // compressed, that is usually the syntax it holds): the first one we can keep
      // (the registry's storable set; why deflate and JPIP are not: transfer-syntaxes.ts).
      ts = pc.transferSyntaxes.find((t) => STORABLE_TRANSFER_SYNTAXES.has(t));
    } else {
      ts = [TS.explicitLittle, TS.implicitLittle].find((t) => pc.transferSyntaxes.includes(t));
    }
    if (!ts) return { ...base, result: PcResult.TransferSyntaxesNotSupported };
    return { ...base, result: PcResult.Accept, transferSyntax: ts };
  });
}

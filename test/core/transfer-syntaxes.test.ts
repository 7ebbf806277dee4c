// One transfer-syntax registry for both doors (core/dicom/transfer-syntaxes.ts):
// what DIMSE negotiation accepts for C-STORE, what either door transcodes from, and
// what the codecs in node_modules really decode.
import { createRequire } from 'node:module';
import dimse from 'dcmjs-dimse';
import { beforeAll, describe, expect, it } from 'vitest';
import { canTranscode as dicomwebCanTranscode } from '../../src/core/dicom/pixels/transcode.js';
import {
  DECODABLE_TRANSFER_SYNTAXES,
  isEncapsulated,
  NATIVE_TRANSFER_SYNTAXES,
  STORABLE_TRANSFER_SYNTAXES,
  TRANSFER_SYNTAXES,
  transferSyntax,
  TS,
} from '../../src/core/dicom/transfer-syntaxes.js';
import { negotiateContexts, PcResult } from '../../src/dimse/protocol/negotiation.js';
import type { AssociateRq } from '../../src/dimse/protocol/pdu.js';
import { canTranscode as dimseCanTranscode } from '../../src/dimse/retrieval.js';

const CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

function storageRq(proposals: string[][]): AssociateRq {
  return {
    protocolVersion: 1,
    calledAe: 'TRESOR',
    callingAe: 'MODALITY',
    applicationContext: '1.2.840.10008.3.1.1.1',
    contexts: proposals.map((transferSyntaxes, i) => ({ id: 2 * i + 1, abstractSyntax: CT_STORAGE, transferSyntaxes })),
    maxPduLength: 0,
    implementationClassUid: '1.2.3',
    roles: new Map(),
  };
}

describe('transfer-syntax registry', () => {
  beforeAll(async () => {
    dimse.log.setLevel('silent');
    await dimse.Transcoding.initializeAsync();
  });

  it('lists each UID once, with consistent flags', () => {
    const uids = TRANSFER_SYNTAXES.map((t) => t.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const uid of Object.values(TS)) expect(transferSyntax(uid), uid).toBeDefined();
    for (const t of TRANSFER_SYNTAXES) {
      expect(isEncapsulated(t.uid)).toBe(t.encapsulated);
      if (t.storable) expect(t.deflated, t.uid).toBe(false);
    }
    expect(transferSyntax(TS.implicitLittle)?.explicitVr).toBe(false);
    expect(transferSyntax(TS.explicitBig)?.littleEndian).toBe(false);
    expect([...NATIVE_TRANSFER_SYNTAXES].sort()).toEqual([TS.implicitLittle, TS.explicitLittle, TS.explicitBig].sort());
    expect(isEncapsulated('1.2.3.4')).toBe(true);
  });

  it('DIMSE accepts for storage exactly the storable syntaxes of the registry', () => {
    const candidates = [...TRANSFER_SYNTAXES.map((t) => t.uid), '1.2.840.10008.1.2.4.52', '1.2.3.4'];
    const result = negotiateContexts(storageRq(candidates.map((uid) => [uid])));
    candidates.forEach((uid, i) => {
      const pc = result[i];
      const storable = transferSyntax(uid)?.storable === true;
      expect(pc.result === PcResult.Accept, uid).toBe(storable);
      if (storable) expect(pc.transferSyntax).toBe(uid);
      expect(STORABLE_TRANSFER_SYNTAXES.has(uid)).toBe(storable);
    });
    // Deflate and JPIP are refused (ARCHITECTURE.md rule 6: kept as received).
    expect(STORABLE_TRANSFER_SYNTAXES.has(TS.deflatedExplicitLittle)).toBe(false);
    expect(STORABLE_TRANSFER_SYNTAXES.has('1.2.840.10008.1.2.4.94')).toBe(false);
  });

  it('both doors transcode from the same decodable set', () => {
    for (const t of TRANSFER_SYNTAXES) {
      expect(dicomwebCanTranscode(t.uid, TS.explicitLittle, 1), `DICOMweb ${t.uid}`).toBe(t.decodable && t.uid !== TS.explicitLittle);
      const target = t.uid === TS.implicitLittle ? TS.explicitLittle : TS.implicitLittle;
      expect(dimseCanTranscode(t.uid, target), `DIMSE ${t.uid}`).toBe(t.decodable);
    }
  });

  it('the decodable set is what dcmjs-dimse and dcmjs-codecs decode', () => {
    // Both check the source syntax against their own table before touching pixels,
    // so a data set without Pixel Data says whether a syntax is in it.
    const codecs = createRequire(import.meta.url)('dcmjs-codecs') as { Transcoder: new (elements: object, ts: string) => { transcode(ts: string): void } };
    const accepts = (f: () => void) => {
      try {
        f();
        return true;
      } catch {
        return false;
      }
    };
    for (const t of TRANSFER_SYNTAXES) {
      const viaDimse = accepts(() => dimse.Transcoding.transcodeDataset(new dimse.Dataset({ PatientID: 'X' }, t.uid), TS.explicitLittle));
      const viaCodecs = accepts(() => new codecs.Transcoder({ PatientID: 'X' }, t.uid).transcode(TS.explicitLittle));
      expect(viaDimse, `dcmjs-dimse ${t.uid}`).toBe(t.decodable);
      expect(viaCodecs, `dcmjs-codecs ${t.uid}`).toBe(t.decodable);
    }
    // The two syntaxes the DICOMweb list used to claim: no decoder for them.
    expect(DECODABLE_TRANSFER_SYNTAXES.has(TS.deflatedExplicitLittle)).toBe(false);
    expect(DECODABLE_TRANSFER_SYNTAXES.has('1.2.840.10008.1.2.4.57')).toBe(false);
  });
});

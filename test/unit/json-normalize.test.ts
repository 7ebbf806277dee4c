// normalizeOwnDicomJson (QIDO-RS answers, issue 13) must give exactly what
// normalizeDicomJson gives (PS3.18 F.2), key order included, while keeping attribute
// objects that are already normal instead of copying them, and never changing one.

import { describe, expect, it } from 'vitest';
import { normalizeDicomJson, normalizeOwnDicomJson } from '../../src/core/dicom/json-normalize.js';
import type { DicomJson, DicomJsonElement } from '../../src/core/dicom/json.js';

/** Attribute objects as stored rows hold them: normal ones and every kind F.2 rewrites. */
const ELEMENTS: Record<string, DicomJsonElement> = {
  uid: { vr: 'UI', Value: ['1.2.3'] },
  multi: { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY'] },
  multiWithNull: { vr: 'LO', Value: ['A', null] },
  empty: { vr: 'LO' },
  emptyString: { vr: 'LO', Value: [''] },
  singleNull: { vr: 'SH', Value: [null] },
  emptyArray: { vr: 'SH', Value: [] },
  numberAsString: { vr: 'IS', Value: ['12'] },
  number: { vr: 'US', Value: [512] },
  decimal: { vr: 'DS', Value: [0.5, 2] },
  stringForNumberVr: { vr: 'FD', Value: ['x'] },
  numberForStringVr: { vr: 'LO', Value: [7] },
  atInteger: { vr: 'AT', Value: [0x00100010] },
  atString: { vr: 'AT', Value: ['00100010'] },
  atLower: { vr: 'AT', Value: ['0010001a'] },
  pn: { vr: 'PN', Value: [{ Alphabetic: 'DOE^JANE' }] },
  pnGroups: { vr: 'PN', Value: [{ Alphabetic: 'YAMADA^TARO', Ideographic: '山田^太郎' }] },
  pnGroupsOutOfOrder: { vr: 'PN', Value: [{ Ideographic: '山田^太郎', Alphabetic: 'YAMADA^TARO' }] },
  pnEmptyGroup: { vr: 'PN', Value: [{ Alphabetic: 'DOE', Phonetic: '' }] },
  pnText: { vr: 'PN', Value: ['DOE^JOHN=ド^ジョン'] },
  pnEmptyObject: { vr: 'PN', Value: [{}] },
  pnWithNull: { vr: 'PN', Value: [{ Alphabetic: 'A' }, null] },
  pnForeignKey: { vr: 'PN', Value: [{ Alphabetic: 'A', Other: 'B' }] },
  noVr: { Value: ['x'] } as unknown as DicomJsonElement,
  extraKey: { vr: 'LO', Value: ['x'], Junk: 1 } as unknown as DicomJsonElement,
  bulk: { vr: 'OB', BulkDataURI: 'https://x/bulk' },
  inline: { vr: 'OB', InlineBinary: 'AAAA' },
  sequence: { vr: 'SQ', Value: [{ '00080100': { vr: 'SH', Value: ['T-1'] } }, {}] },
};

describe('normalizeOwnDicomJson', () => {
  it('gives what normalizeDicomJson gives, in the same key order, for every kind of attribute', () => {
    for (const [name, el] of Object.entries(ELEMENTS)) {
      const ds: DicomJson = { '00080018': { vr: 'UI', Value: ['1.2'] }, '00101010': structuredClone(el) };
      expect(JSON.stringify(normalizeOwnDicomJson(structuredClone(ds))), name).toBe(JSON.stringify(normalizeDicomJson(ds)));
    }
    // All at once, with a lower-case key and a value that is no attribute object.
    const all: DicomJson = Object.fromEntries(Object.values(ELEMENTS).map((el, i) => [`0011${String(1000 + i)}`, structuredClone(el)]));
    Object.assign(all, { '0008001a': { vr: 'UI', Value: ['1.3'] }, '00091001': null, '00091002': 'text' });
    expect(normalizeOwnDicomJson(structuredClone(all))).toEqual(normalizeDicomJson(all));
  });

  it('keeps normal attribute objects as they are, copies the others, and changes neither', () => {
    const shared = { vr: 'UI', Value: ['1.2.3'] };
    const pn = { vr: 'PN', Value: [{ Alphabetic: 'DOE^JANE', Ideographic: 'ド' }] };
    const stale = { vr: 'IS', Value: ['12'] };
    const before = JSON.stringify([shared, pn, stale]);
    const ds: DicomJson = { '0020000D': shared, '00100010': pn, '00200013': stale };
    const out = normalizeOwnDicomJson(ds);
    expect(out).toBe(ds);
    expect(out['0020000D']).toBe(shared);
    expect(out['00100010']).toBe(pn);
    expect(out['00200013']).not.toBe(stale);
    expect(out['00200013']).toEqual({ vr: 'IS', Value: [12] });
    expect(JSON.stringify([shared, pn, stale])).toBe(before);
  });
});

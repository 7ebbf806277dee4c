// C-STORE and C-GET at the byte level (raw client): the data set is kept exactly as
// received and comes back exactly as stored; refusals carry the statuses of
// src/dimse/status.ts.

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemPrincipal } from '../../src/core/principal.js';
import { parseMeta } from '../../src/dimse/part10-reader.js';
import { startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { acContexts, associate, commandSet, connectRaw, dataset, pdata, UID, type RawClient, type RawContext } from '../helpers/dimse-raw.js';

const STUDY = '1.2.826.0.1.3680043.10.1376.8.1';

/** An implicit VR data set written by hand: undefined-length sequence, private attributes, odd padding choices. */
function handMade(sop: string): Buffer {
  const el = (g: number, e: number, v: Buffer) => {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(g, 0);
    h.writeUInt16LE(e, 2);
    h.writeUInt32LE(v.length, 4);
    return Buffer.concat([h, v]);
  };
  const s = (t: string) => Buffer.from(t.length % 2 ? `${t}\0` : t, 'latin1');
  const undefinedLength = (g: number, e: number, items: Buffer[]) => {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(g, 0);
    h.writeUInt16LE(e, 2);
    h.writeUInt32LE(0xffffffff, 4);
    const item = (body: Buffer) => Buffer.concat([Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]), body, Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0])]);
    return Buffer.concat([h, ...items.map(item), Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])]);
  };
  return Buffer.concat([
    el(0x0008, 0x0016, s(UID.SecondaryCapture)),
    el(0x0008, 0x0018, s(sop)),
    el(0x0008, 0x0060, s('OT')),
    el(0x0009, 0x0010, s('ACME 1.0')), // private creator
    el(0x0009, 0x1001, Buffer.from([1, 2, 3, 4, 5, 6])), // private value, VR unknown in implicit
    el(0x0010, 0x0010, s('Hand^Made')),
    el(0x0010, 0x0020, s('HM1')),
    el(0x0020, 0x000d, s(STUDY)),
    el(0x0020, 0x000e, s(`${STUDY}.1`)),
    undefinedLength(0x0040, 0xa730, [el(0x0040, 0xa010, s('CONTAINS ')), el(0x0040, 0xa040, s('TEXT'))]),
  ]);
}

describe('C-STORE and C-GET, byte for byte', () => {
  let env: DimseEnv;
  let dev: DeviceCreds;

  beforeAll(async () => {
    env = await startDimseEnv({ limits: { maxObjectBytes: 2 * 1024 * 1024 } });
    dev = await env.device('RAW01', [['radiology', 'writer'], ['radiology', 'reader']]);
  });
  afterAll(async () => env?.close());

  async function open(contexts: RawContext[], extra: object = {}): Promise<{ c: RawClient; ac: Buffer }> {
    const c = await connectRaw(env.port, { creds: dev, caPath: env.caPath });
    const r = await associate(c, { callingAe: 'RAW01', contexts, ...extra });
    if (r === 'closed' || r.type !== 2) throw new Error('not accepted');
    return { c, ac: r.body };
  }

  async function store(c: RawClient, pcId: number, sopClass: string, sop: string, body: Buffer): Promise<Record<string, unknown>> {
    c.send(pdata(pcId, true, true, commandSet({ CommandField: 0x0001, MessageID: 1, AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: sop, Priority: 0, CommandDataSetType: 0 })));
    for (let off = 0; off < body.length; off += 60_000) c.send(pdata(pcId, false, off + 60_000 >= body.length, body.subarray(off, off + 60_000)));
    return (await c.message()).command;
  }

  it('stores the received bytes after a Part 10 header built from the request, and C-GET returns them unchanged', async () => {
    const sop = `${STUDY}.1.1`;
    const body = handMade(sop);
    const { c } = await open([{ id: 1, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ImplicitLE] }]);
    expect((await store(c, 1, UID.SecondaryCapture, sop, body)).Status).toBe(0);
    c.destroy();

    const [inst] = await env.retrieve.list(systemPrincipal, { level: 'IMAGE', sopInstanceUids: [sop] });
    const blob = Buffer.concat(await (await env.retrieve.open(inst)).toArray());
    const meta = parseMeta(blob)!;
    expect(meta.transferSyntaxUid).toBe(UID.ImplicitLE);
    expect(blob.subarray(meta.end).equals(body)).toBe(true);

    const { c: g } = await open(
      [
        { id: 1, abstractSyntax: UID.StudyRootGet, transferSyntaxes: [UID.ImplicitLE] },
        { id: 3, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ImplicitLE] },
      ],
      { roles: [{ abstractSyntax: UID.SecondaryCapture, scu: false, scp: true }], maxPdu: 4096 },
    );
    g.send(pdata(1, true, true, commandSet({ CommandField: 0x0010, MessageID: 2, AffectedSOPClassUID: UID.StudyRootGet, Priority: 0, CommandDataSetType: 0 })));
    g.send(pdata(1, false, true, dataset({ QueryRetrieveLevel: 'IMAGE', StudyInstanceUID: STUDY, SeriesInstanceUID: `${STUDY}.1`, SOPInstanceUID: sop })));
    const sub = await g.message();
    expect(sub.command.AffectedSOPInstanceUID).toBe(sop);
    expect(sub.dataset!.equals(body)).toBe(true);
    g.send(pdata(3, true, true, commandSet({ CommandField: 0x8001, MessageIDBeingRespondedTo: sub.command.MessageID, AffectedSOPClassUID: UID.SecondaryCapture, AffectedSOPInstanceUID: sop, CommandDataSetType: 0x0101, Status: 0 })));
    const final = await g.message();
    expect(final.command).toMatchObject({ Status: 0, NumberOfCompletedSuboperations: 1, NumberOfFailedSuboperations: 0 });
    g.destroy();
  });

  it('accepts compressed and big-endian transfer syntaxes as proposed, and refuses deflate', async () => {
    const { ac, c } = await open([
      { id: 1, abstractSyntax: UID.CtStorage, transferSyntaxes: ['1.2.840.10008.1.2.4.90', UID.ExplicitLE] },
      { id: 3, abstractSyntax: UID.CtStorage, transferSyntaxes: ['1.2.840.10008.1.2.2'] },
      { id: 5, abstractSyntax: UID.CtStorage, transferSyntaxes: ['1.2.840.10008.1.2.1.99'] },
      { id: 7, abstractSyntax: UID.Verification, transferSyntaxes: ['1.2.840.10008.1.2.4.90'] },
    ]);
    c.destroy();
    const pcs = acContexts(ac);
    expect(pcs.get(1)).toEqual({ result: 0, ts: '1.2.840.10008.1.2.4.90' });
    expect(pcs.get(3)).toEqual({ result: 0, ts: '1.2.840.10008.1.2.2' });
    expect(pcs.get(5)!.result).toBe(4); // transfer syntaxes not supported
    expect(pcs.get(7)!.result).toBe(4);
  });

  it('answers 0xA700 for an object above limits.maxObjectBytes, and keeps the association', async () => {
    const { c } = await open([{ id: 1, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ImplicitLE] }]);
    const big = Buffer.concat([handMade(`${STUDY}.1.2`), Buffer.alloc(3 * 1024 * 1024)]);
    const rsp = await store(c, 1, UID.SecondaryCapture, `${STUDY}.1.2`, big);
    expect(rsp.Status).toBe(0xa700);
    expect(rsp.ErrorComment).toBe('object-too-large');
    expect((await store(c, 1, UID.SecondaryCapture, `${STUDY}.1.3`, handMade(`${STUDY}.1.3`))).Status).toBe(0);
    expect(await fs.readdir(path.join(env.dir, 'tmp'))).toEqual([]);
    c.destroy();
  });

  it('refuses a request whose SOP class is not its context\'s, an invalid UID, and data that is not DICOM', async () => {
    const { c } = await open([{ id: 1, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ImplicitLE] }, { id: 3, abstractSyntax: UID.Verification, transferSyntaxes: [UID.ImplicitLE] }]);
    expect((await store(c, 1, UID.CtStorage, `${STUDY}.1.4`, handMade(`${STUDY}.1.4`))).Status).toBe(0x0122);
    expect((await store(c, 1, UID.SecondaryCapture, '1.2.abc', handMade(`${STUDY}.1.5`))).Status).toBe(0xc000);
    expect((await store(c, 3, UID.Verification, `${STUDY}.1.6`, handMade(`${STUDY}.1.6`))).Status).toBe(0x0122);
    const junk = await store(c, 1, UID.SecondaryCapture, `${STUDY}.1.7`, Buffer.from('this is not a data set at all'));
    expect([0xa900, 0xc000]).toContain(junk.Status);
    c.destroy();
  });
});

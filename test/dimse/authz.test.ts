// The authorization matrix (test/helpers/authz-matrix.ts, ARCHITECTURE.md rule 9) through the
// DIMSE door: devices with their certificates, users with user identity (PS3.7
// D.3.3.7; dcmtk's findscu/getscu have no user identity, hence the raw client).
// read = C-FIND finds the department's study and C-GET retrieves it; a refused read
// finds nothing and retrieves nothing. write = C-STORE of a new instance into the
// department's study; a refused write is a failure status.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { casesFor, MATRIX_PRINCIPALS, type MatrixPrincipalName } from '../helpers/authz-matrix.js';
import { startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { associate, commandSet, connectRaw, dataset, pdata, releaseRq, UID, type RawClient } from '../helpers/dimse-raw.js';

const PASSWORD = 'matrix password 2024';
const STUDY: Record<string, string> = { cardiology: '1.2.826.0.1.3680043.10.1376.7.1', radiology: '1.2.826.0.1.3680043.10.1376.7.2' };
let uidCounter = 0;

function object(study: string): { sop: string; body: Buffer } {
  const sop = `${study}.1.${++uidCounter}`;
  return {
    sop,
    body: dataset(
      {
        SOPClassUID: UID.SecondaryCapture, SOPInstanceUID: sop, StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`,
        PatientID: `P${study.slice(-1)}`, PatientName: 'Matrix^Test', Modality: 'OT', Rows: 4, Columns: 4, BitsAllocated: 8, BitsStored: 8,
        HighBit: 7, PixelRepresentation: 0, SamplesPerPixel: 1, PhotometricInterpretation: 'MONOCHROME2', PixelData: [new Uint8Array(16).buffer],
        _vrMap: { PixelData: 'OB' },
      },
      UID.ExplicitLE,
    ),
  };
}

const aeOf = (name: string) => name.toUpperCase().replace(/[^A-Z0-9]/g, '').slice(0, 16);

describe('authorization matrix through DIMSE', () => {
  let env: DimseEnv;
  const creds = new Map<MatrixPrincipalName, DeviceCreds>();

  async function open(name: MatrixPrincipalName): Promise<RawClient> {
    const p = MATRIX_PRINCIPALS[name];
    const contexts = [
      { id: 1, abstractSyntax: UID.StudyRootFind as string, transferSyntaxes: [UID.ExplicitLE as string] },
      { id: 3, abstractSyntax: UID.StudyRootGet as string, transferSyntaxes: [UID.ExplicitLE as string] },
      { id: 5, abstractSyntax: UID.SecondaryCapture as string, transferSyntaxes: [UID.ExplicitLE as string] },
    ];
    const roles = [{ abstractSyntax: UID.SecondaryCapture as string, scu: true, scp: true }];
    const c = p.kind === 'device' ? await connectRaw(env.port, { creds: creds.get(name), caPath: env.caPath }) : await connectRaw(env.port, { caPath: env.caPath });
    const ae = p.kind === 'device' ? aeOf(name) : 'MATRIXWS';
    const r = await associate(c, { callingAe: ae, contexts, roles, ...(p.kind === 'user' ? { userIdentity: { type: 2, primary: name, secondary: PASSWORD } } : {}) });
    if (r === 'closed' || r.type !== 0x02) throw new Error(`${name}: association not accepted`);
    return c;
  }

  async function store(c: RawClient, study: string): Promise<number> {
    const o = object(study);
    c.send(pdata(5, true, true, commandSet({ CommandField: 0x0001, MessageID: 11, AffectedSOPClassUID: UID.SecondaryCapture, AffectedSOPInstanceUID: o.sop, Priority: 0, CommandDataSetType: 0 })));
    c.send(pdata(5, false, true, o.body));
    return (await c.message()).command.Status as number;
  }

  async function find(c: RawClient, study: string): Promise<number> {
    c.send(pdata(1, true, true, commandSet({ CommandField: 0x0020, MessageID: 12, AffectedSOPClassUID: UID.StudyRootFind, Priority: 0, CommandDataSetType: 0 })));
    c.send(pdata(1, false, true, dataset({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: study }, UID.ExplicitLE)));
    let matches = 0;
    for (;;) {
      const m = await c.message();
      if (m.command.Status === 0xff00) matches++;
      else return matches;
    }
  }

  async function get(c: RawClient, study: string): Promise<number> {
    c.send(pdata(3, true, true, commandSet({ CommandField: 0x0010, MessageID: 13, AffectedSOPClassUID: UID.StudyRootGet, Priority: 0, CommandDataSetType: 0 })));
    c.send(pdata(3, false, true, dataset({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: study }, UID.ExplicitLE)));
    let received = 0;
    for (;;) {
      const m = await c.message();
      if (m.command.CommandField === 0x0001) {
        received++;
        c.send(pdata(m.pcId, true, true, commandSet({ CommandField: 0x8001, MessageIDBeingRespondedTo: m.command.MessageID, AffectedSOPClassUID: m.command.AffectedSOPClassUID, AffectedSOPInstanceUID: m.command.AffectedSOPInstanceUID, CommandDataSetType: 0x0101, Status: 0 })));
      } else if (m.command.Status !== 0xff00) return received;
    }
  }

  beforeAll(async () => {
    env = await startDimseEnv();
    for (const [name, p] of Object.entries(MATRIX_PRINCIPALS) as [MatrixPrincipalName, (typeof MATRIX_PRINCIPALS)[MatrixPrincipalName]][]) {
      const roles = p.roles.map((r) => [r.department, r.role] as [string, typeof r.role]);
      if (p.kind === 'user') await env.user(name, PASSWORD, roles, p.globalAdmin);
      else creds.set(name, await env.device(aeOf(name), roles));
    }
    // One study per department, stored by a writer of that department.
    for (const dept of ['cardiology', 'radiology']) {
      const seed = await env.device(`SEED${dept.slice(0, 4).toUpperCase()}`, [[dept, 'writer']]);
      const c = await connectRaw(env.port, { creds: seed, caPath: env.caPath });
      await associate(c, { callingAe: seed.aeTitle, contexts: [{ id: 5, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ExplicitLE] }] });
      expect(await store(c, STUDY[dept])).toBe(0);
      c.destroy();
    }
  }, 60_000);
  afterAll(async () => env?.close());

  for (const c of casesFor(['read', 'write'])) {
    it(`${c.principal} ${c.action} ${c.department}: ${c.expected ? 'allowed' : 'refused'}`, async () => {
      const conn = await open(c.principal);
      try {
        const study = STUDY[c.department];
        if (c.action === 'read') {
          const found = await find(conn, study);
          const got = await get(conn, study);
          expect({ found, got }).toEqual(c.expected ? { found: 1, got: expect.any(Number) } : { found: 0, got: 0 });
          if (c.expected) expect(got).toBeGreaterThanOrEqual(1);
        } else {
          const status = await store(conn, study);
          if (c.expected) expect(status).toBe(0);
          else expect(status).not.toBe(0);
        }
        conn.send(releaseRq());
        expect(await conn.next()).toMatchObject({ type: 0x06 });
      } finally {
        conn.destroy();
      }
    });
  }
});

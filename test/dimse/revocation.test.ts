// Revocation on open associations (issue 14, item 2): an association is authenticated
// once, at A-ASSOCIATE-RQ; each later request re-checks the credentials it was accepted
// with (core/identity/recheck.ts). After a device or user is disabled, a role revoked,
// a certificate re-issued or a password changed, the next C-STORE / C-FIND / C-ECHO on
// the association that is already open is refused (0124H, "credentials-revoked") and the
// association is aborted (A-ABORT, source: service user). The raw client keeps one
// association open across the admin action, over real TLS with the real server.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemPrincipal } from '../../src/core/principal.js';
import { auditOf, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { associate, commandSet, connectRaw, dataset, echoCommand, pdata, UID, type RawClient } from '../helpers/dimse-raw.js';

const PASSWORD = 'revocation password 2024';
const STUDY = '1.2.826.0.1.3680043.10.1376.14.2';
let uidCounter = 0;

const CONTEXTS = [
  { id: 1, abstractSyntax: UID.StudyRootFind as string, transferSyntaxes: [UID.ExplicitLE as string] },
  { id: 3, abstractSyntax: UID.Verification as string, transferSyntaxes: [UID.ImplicitLE as string] },
  { id: 5, abstractSyntax: UID.SecondaryCapture as string, transferSyntaxes: [UID.ExplicitLE as string] },
];

function object(): { sop: string; body: Buffer } {
  const sop = `${STUDY}.1.${++uidCounter}`;
  return {
    sop,
    body: dataset(
      {
        SOPClassUID: UID.SecondaryCapture, SOPInstanceUID: sop, StudyInstanceUID: STUDY, SeriesInstanceUID: `${STUDY}.1`,
        PatientID: 'REV1', PatientName: 'Revocation^Test', Modality: 'OT', Rows: 4, Columns: 4, BitsAllocated: 8, BitsStored: 8,
        HighBit: 7, PixelRepresentation: 0, SamplesPerPixel: 1, PhotometricInterpretation: 'MONOCHROME2', PixelData: [new Uint8Array(16).buffer],
        _vrMap: { PixelData: 'OB' },
      },
      UID.ExplicitLE,
    ),
  };
}

async function store(c: RawClient): Promise<{ status: number; comment?: unknown }> {
  const o = object();
  c.send(pdata(5, true, true, commandSet({ CommandField: 0x0001, MessageID: 11, AffectedSOPClassUID: UID.SecondaryCapture, AffectedSOPInstanceUID: o.sop, Priority: 0, CommandDataSetType: 0 })));
  c.send(pdata(5, false, true, o.body));
  const m = await c.message();
  return { status: m.command.Status as number, comment: m.command.ErrorComment };
}

/** C-FIND: the final status and the number of matches. */
async function find(c: RawClient): Promise<{ status: number; matches: number; comment?: unknown }> {
  c.send(pdata(1, true, true, commandSet({ CommandField: 0x0020, MessageID: 12, AffectedSOPClassUID: UID.StudyRootFind, Priority: 0, CommandDataSetType: 0 })));
  c.send(pdata(1, false, true, dataset({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: STUDY }, UID.ExplicitLE)));
  let matches = 0;
  for (;;) {
    const m = await c.message();
    if (m.command.Status === 0xff00) matches++;
    else return { status: m.command.Status as number, matches, comment: m.command.ErrorComment };
  }
}

async function echo(c: RawClient): Promise<number> {
  c.send(pdata(3, true, true, echoCommand(21)));
  return (await c.message()).command.Status as number;
}

/** After the refusal: an A-ABORT (type 7) from the service user (source 0), then the connection closes. */
async function expectAborted(c: RawClient): Promise<void> {
  const rest = await c.closed(10_000);
  const abort = rest.find((p) => p.type === 0x07);
  expect(abort, 'an A-ABORT follows the refusal').toBeDefined();
  expect(abort!.body[2], 'abort source: DICOM UL service-user').toBe(0);
  expect(c.ended).toBe(true);
}

describe('revocation on open associations', () => {
  let env: DimseEnv;

  beforeAll(async () => {
    env = await startDimseEnv();
    // The study exists in radiology, so that C-FIND has something to find.
    const seed = await env.device('SEEDREV', [['radiology', 'writer']]);
    const c = await openDevice(seed);
    expect((await store(c)).status).toBe(0);
    c.destroy();
  }, 60_000);
  afterAll(async () => env?.close());

  async function openDevice(d: DeviceCreds): Promise<RawClient> {
    const c = await connectRaw(env.port, { creds: d, caPath: env.caPath });
    const r = await associate(c, { callingAe: d.aeTitle, contexts: CONTEXTS });
    if (r === 'closed' || r.type !== 0x02) throw new Error(`${d.aeTitle}: association not accepted`);
    return c;
  }

  async function openUser(username: string, password = PASSWORD): Promise<RawClient> {
    const c = await connectRaw(env.port, { caPath: env.caPath });
    const r = await associate(c, { callingAe: 'REVWS', contexts: CONTEXTS, userIdentity: { type: 2, primary: username, secondary: password } });
    if (r === 'closed' || r.type !== 0x02) throw new Error(`${username}: association not accepted`);
    return c;
  }

  async function lastAlert(name: string) {
    // The security-alert row is written after the abort (best effort, recordAfter): wait for it.
    for (let i = 0; i < 50; i++) {
      const rows = await auditOf(env, 'security-alert');
      const row = rows.filter((r) => r.principalName === name && r.details.reason === 'revoked').at(-1);
      if (row) return row;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('no security-alert row for the revocation');
  }

  it('device disabled: the next C-STORE is refused and the association aborted', async () => {
    const d = await env.device('REVDIS', [['radiology', 'writer']]);
    const c = await openDevice(d);
    expect((await store(c)).status, 'before: stored').toBe(0);
    await env.identity.admin.updateDevice(systemPrincipal, 'REVDIS', { disabled: true });
    const r = await store(c);
    expect(r.status).toBe(0x0124);
    expect(r.comment).toBe('credentials-revoked');
    await expectAborted(c);
    expect(await lastAlert('REVDIS')).toMatchObject({ principalName: 'REVDIS', details: expect.objectContaining({ detail: 'device-disabled' }) });
  });

  it('user disabled: the next C-FIND is refused and the association aborted', async () => {
    await env.user('revuser1', PASSWORD, [['radiology', 'reader']]);
    const c = await openUser('revuser1');
    expect(await find(c), 'before: the study is found').toMatchObject({ status: 0, matches: 1 });
    await env.identity.admin.updateUser(systemPrincipal, 'revuser1', { disabled: true });
    const r = await find(c);
    expect(r).toMatchObject({ status: 0x0124, matches: 0, comment: 'credentials-revoked' });
    await expectAborted(c);
    expect(await lastAlert('revuser1')).toMatchObject({ principalName: 'revuser1', details: expect.objectContaining({ detail: 'user-disabled' }) });
  });

  it('role revoked (device): the next C-STORE is refused and the association aborted', async () => {
    const d = await env.device('REVROLE', [['radiology', 'writer'], ['radiology', 'reader']]);
    const c = await openDevice(d);
    expect((await store(c)).status).toBe(0);
    await env.identity.admin.revokeDeviceRole(systemPrincipal, 'REVROLE', { department: 'radiology', role: 'writer' });
    const r = await store(c);
    expect(r.status).toBe(0x0124);
    await expectAborted(c);
    expect(await lastAlert('REVROLE')).toMatchObject({ principalName: 'REVROLE', details: expect.objectContaining({ detail: 'role-revoked' }) });
  });

  it('role revoked (user): the next C-FIND is refused, not answered with what the role allowed', async () => {
    await env.user('revuser2', PASSWORD, [['radiology', 'reader']]);
    const c = await openUser('revuser2');
    expect((await find(c)).matches).toBe(1);
    await env.identity.admin.revokeUserRole(systemPrincipal, 'revuser2', { department: 'radiology', role: 'reader' });
    expect(await find(c)).toMatchObject({ status: 0x0124, matches: 0 });
    await expectAborted(c);
  });

  it('certificate re-issued: the old certificate\'s association is refused at its next request, even a C-ECHO', async () => {
    const d = await env.device('REVCERT', [['radiology', 'writer']]);
    const c = await openDevice(d);
    expect(await echo(c)).toBe(0);
    expect((await store(c)).status).toBe(0);
    await env.identity.admin.issueDeviceCertificate(systemPrincipal, 'REVCERT', {});
    expect(await echo(c)).toBe(0x0124);
    await expectAborted(c);
    expect(await lastAlert('REVCERT')).toMatchObject({ principalName: 'REVCERT', details: expect.objectContaining({ detail: 'certificate-replaced' }) });
    // The old certificate cannot open a new one either (that was already so).
    await expect(openDevice(d)).rejects.toThrow(/not accepted/);
  });

  it('certificate revoked without a replacement: refused likewise', async () => {
    const d = await env.device('REVCERT2', [['radiology', 'writer']]);
    const c = await openDevice(d);
    expect((await store(c)).status).toBe(0);
    await env.identity.admin.revokeDeviceCertificate(systemPrincipal, 'REVCERT2');
    expect((await store(c)).status).toBe(0x0124);
    await expectAborted(c);
  });

  it('password changed: an association opened with the old password is refused at its next request', async () => {
    await env.user('revuser3', PASSWORD, [['radiology', 'reader']]);
    const c = await openUser('revuser3');
    expect((await find(c)).matches).toBe(1);
    await env.identity.admin.updateUser(systemPrincipal, 'revuser3', { password: 'a brand new passphrase 99' });
    expect((await find(c)).status).toBe(0x0124);
    await expectAborted(c);
  });

  it('unrelated changes do not end an association: a role granted, another account disabled', async () => {
    await env.user('revuser4', PASSWORD, [['radiology', 'reader']]);
    await env.user('bystander', PASSWORD, [['radiology', 'reader']]);
    await env.department('cardiology');
    const c = await openUser('revuser4');
    expect((await find(c)).matches).toBe(1);
    await env.identity.admin.grantUserRole(systemPrincipal, 'revuser4', { department: 'cardiology', role: 'reader' });
    await env.identity.admin.updateUser(systemPrincipal, 'bystander', { disabled: true });
    for (let i = 0; i < 3; i++) expect(await find(c)).toMatchObject({ status: 0, matches: 1 });
    expect(await echo(c)).toBe(0);
    expect(c.ended).toBe(false);
    c.destroy();
  });
});

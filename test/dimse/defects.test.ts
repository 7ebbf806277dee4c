// One test per dcmjs-dimse 0.3.3 defect we guard against (src/dimse/README.md).
// Each would fail with dcmjs-dimse's own Server/Scp in place of our guard.

import fs from 'node:fs/promises';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dimse from 'dcmjs-dimse';
import { nestedDcmjs } from '../../src/dimse/protocol/dcmjs-internal.js';
import { AE, auditOf, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { acContexts, acUserItems, associate, associateRq, commandSet, connectRaw, dataset, echoCommand, pdata, releaseRq, UID, type RawClient, type RawContext } from '../helpers/dimse-raw.js';
import { run, tlsArgs } from '../helpers/dimse-tools.js';

const echoCtx: RawContext = { id: 1, abstractSyntax: UID.Verification, transferSyntaxes: [UID.ImplicitLE] };

describe('dcmjs-dimse defects, guarded', () => {
  let env: DimseEnv;
  let dev: DeviceCreds;
  let slowQueries = 0;
  let throwingQueries = false;

  beforeAll(async () => {
    env = await startDimseEnv({
      limits: { maxObjectBytes: 256 * 1024 * 1024 },
      tuning: { idleMs: 1_000, pduMs: 1_000, artimMs: 1_500 },
      services: (real) => ({
        query: {
          ...real.query,
          async *searchPaged(p, req, door, pageSize) {
            if (throwingQueries) {
              // An asynchronous failure that is not a TresorError (a driver bug, say).
              await new Promise((r) => setTimeout(r, 10));
              throw new TypeError('boom');
            }
            if (slowQueries > 0) await new Promise((r) => setTimeout(r, slowQueries));
            yield* real.query.searchPaged(p, req, door, pageSize);
          },
        },
      }),
    });
    dev = await env.device('WS1', [['radiology', 'reader'], ['radiology', 'writer']]);
  });
  afterAll(async () => env?.close());

  const open = (creds: DeviceCreds | undefined = dev) => connectRaw(env.port, { creds, caPath: env.caPath });

  async function established(contexts: RawContext[] = [echoCtx], extra: Partial<Parameters<typeof associate>[1]> = {}): Promise<{ c: RawClient; ac: Buffer }> {
    const c = await open();
    const r = await associate(c, { callingAe: 'WS1', contexts, ...extra });
    if (r === 'closed' || r.type !== 0x02) throw new Error(`not accepted: ${r === 'closed' ? r : r.type}`);
    return { c, ac: r.body };
  }

  it('1. P-DATA pipelined behind the A-ASSOCIATE-RQ is never dispatched: A-ABORT, no C-ECHO-RSP', async () => {
    // Without a certificate nor user identity: dcmjs-dimse answered the C-ECHO before rejecting.
    const c = await connectRaw(env.port, { caPath: env.caPath });
    c.send(Buffer.concat([associateRq({ callingAe: 'WS1', contexts: [echoCtx] }), pdata(1, true, true, echoCommand(1))]));
    const seen = await c.closed(5000);
    expect(seen.map((p) => p.type)).toEqual([0x07]);
    // With a valid certificate too: a P-DATA before the A-ASSOCIATE-AC is a protocol violation.
    const d = await open();
    d.send(Buffer.concat([associateRq({ callingAe: 'WS1', contexts: [echoCtx] }), pdata(1, true, true, echoCommand(1))]));
    expect((await d.closed(5000)).map((p) => p.type)).toEqual([0x07]);
    // The refusal's audit row is written as the association ends, maybe just after the socket closed.
    await expect
      .poll(async () => (await auditOf(env, 'association')).some((r) => r.outcome === 'denied' && String(r.details.detail).includes('before the association was accepted')), { timeout: 5000 })
      .toBe(true);
  });

  it('2. an incoming PDU length above the limit is refused from its header (no 4 GiB buffer)', async () => {
    const c = await open();
    const before = process.memoryUsage().arrayBuffers;
    const header = Buffer.from([0x01, 0, 0xff, 0xff, 0xff, 0xf0]);
    c.send(Buffer.concat([header, Buffer.alloc(64 * 1024)]));
    const seen = await c.closed(3000);
    expect(seen.map((p) => p.type)).toEqual([0x07]);
    expect(seen[0].body[3]).toBe(6); // reason: invalid PDU parameter value
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
    // The same for a P-DATA-TF above our announced maximum on an established association.
    const { c: e, ac } = await established();
    const announced = acUserItems(ac).get(0x51)![0].readUInt32BE(0);
    expect(announced).toBe(1024 * 1024);
    const big = Buffer.alloc(6);
    big[0] = 0x04;
    big.writeUInt32BE(announced + 1, 2);
    e.send(big);
    expect((await e.closed(3000)).map((p) => p.type)).toEqual([0x07]);
  });

  it('3. concurrent connections are limited in total and per address (pending and associated apart)', async () => {
    // Connections that have not associated yet are "pending" (listener.ts, issue 14 item 4): their own pool.
    const limited = await startDimseEnv({ limits: { maxAssociations: 2, maxAssociationsPerAddress: 2 }, tuning: { maxPendingConnections: 6, maxPendingPerAddress: 3 } });
    try {
      const d = await limited.device('LIM1', [['radiology', 'reader']]);
      const conns: RawClient[] = [];
      for (let i = 0; i < 3; i++) conns.push(await connectRaw(limited.port, { creds: d, caPath: limited.caPath, localAddress: '127.0.0.2' }));
      // The fourth pending one from the same address is dropped before any TLS work…
      await expect(connectRaw(limited.port, { creds: d, caPath: limited.caPath, localAddress: '127.0.0.2' })).rejects.toThrow();
      // …while another address still gets in, and a real client works.
      const echo = await run('echoscu', ['-aet', 'LIM1', '-aec', AE, ...tlsArgs(d, limited.caPath), '127.0.0.1', String(limited.port)]);
      expect(echo.code).toBe(0);
      for (let i = 0; i < 3; i++) conns.push(await connectRaw(limited.port, { creds: d, caPath: limited.caPath, localAddress: `127.0.0.${3 + i}` }));
      // Six pending: the pool is full; a newcomer evicts the oldest of the busiest address (127.0.0.2).
      const late = await connectRaw(limited.port, { creds: d, caPath: limited.caPath, localAddress: '127.0.0.9' });
      await conns[0].closed(5000);
      expect(conns[0].ended).toBe(true);
      expect(conns[3].ended).toBe(false);
      // Associated connections count against the association limits (2), not the pending pool.
      const echoCtx = [{ id: 1, abstractSyntax: UID.Verification as string, transferSyntaxes: [UID.ImplicitLE as string] }];
      const a1 = await associate(conns[3], { callingAe: 'LIM1', contexts: echoCtx });
      const a2 = await associate(conns[4], { callingAe: 'LIM1', contexts: echoCtx });
      const a3 = await associate(conns[5], { callingAe: 'LIM1', contexts: echoCtx });
      expect([a1, a2].map((a) => (a === 'closed' ? 'closed' : a.type))).toEqual([0x02, 0x02]);
      // The third: A-ASSOCIATE-RJ transient, service provider (presentation), local limit exceeded (PS3.8 §9.3.4).
      expect(a3 === 'closed' ? 'closed' : a3.body.subarray(1, 4).toString('hex')).toBe('020302');
      for (const c of [...conns, late]) c.destroy();
    } finally {
      await limited.close();
    }
  });

  it('4. the association timeout (ARTIM) really fires on the server side', async () => {
    const c = await open();
    const t0 = Date.now();
    const seen = await c.closed(5000);
    expect(seen).toEqual([]); // PS3.8 §9.1.5: no A-ASSOCIATE-RQ → the transport is simply closed
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_400);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('5. a handler slower than the PDU/idle timeouts is not cut off', async () => {
    slowQueries = 2_500; // idle and PDU timeouts are 1 s
    try {
      const { c } = await established([{ id: 1, abstractSyntax: UID.StudyRootFind, transferSyntaxes: [UID.ImplicitLE] }]);
      c.send(pdata(1, true, true, commandSet({ CommandField: 0x0020, MessageID: 7, AffectedSOPClassUID: UID.StudyRootFind, Priority: 0, CommandDataSetType: 0x0000 })));
      c.send(pdata(1, false, true, dataset({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' })));
      const m = await c.message(6000);
      expect(m.command.Status).toBe(0x0000);
      expect(m.command.MessageIDBeingRespondedTo).toBe(7);
      c.send(releaseRq());
      // PS3.8 §9.3.7: A-RELEASE-RP, PDU length 4, four reserved bytes.
      expect((await c.next()) as { type: number; body: Buffer }).toEqual({ type: 0x06, body: Buffer.alloc(4) });
    } finally {
      slowQueries = 0;
    }
  });

  it('5b. the idle timeout aborts an association with nothing in progress', async () => {
    const { c } = await established();
    const t0 = Date.now();
    const seen = await c.closed(4000);
    expect(seen.map((p) => p.type)).toEqual([0x07]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it('6. an exception in an asynchronous handler answers a failure status and the process lives on', async () => {
    throwingQueries = true;
    try {
      const { c } = await established([{ id: 1, abstractSyntax: UID.StudyRootFind, transferSyntaxes: [UID.ImplicitLE] }, { ...echoCtx, id: 3 }]);
      c.send(pdata(1, true, true, commandSet({ CommandField: 0x0020, MessageID: 9, AffectedSOPClassUID: UID.StudyRootFind, Priority: 0, CommandDataSetType: 0x0000 })));
      c.send(pdata(1, false, true, dataset({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' })));
      const m = await c.message();
      expect(m.command.Status).toBe(0x0110);
      expect(m.command.ErrorComment).toBe('processing-failure'); // never the exception's message
      // The same association still works.
      c.send(pdata(3, true, true, echoCommand(10)));
      expect((await c.message()).command.Status).toBe(0);
    } finally {
      throwingQueries = false;
    }
  });

  it('7. presentation context IDs proposed out of order keep their IDs', async () => {
    const { c, ac } = await established([
      { id: 5, abstractSyntax: UID.Verification, transferSyntaxes: [UID.ImplicitLE] },
      { id: 3, abstractSyntax: UID.Worklist, transferSyntaxes: [UID.ImplicitLE] },
      { id: 1, abstractSyntax: UID.StudyRootFind, transferSyntaxes: [UID.ExplicitLE] },
    ]);
    const pcs = acContexts(ac);
    expect([...pcs.keys()]).toEqual([5, 3, 1]);
    expect(pcs.get(5)).toEqual({ result: 0, ts: UID.ImplicitLE });
    expect(pcs.get(3)!.result).toBe(3); // abstract syntax not supported
    expect(pcs.get(1)).toEqual({ result: 0, ts: UID.ExplicitLE });
    c.send(pdata(5, true, true, echoCommand(1)));
    const m = await c.message();
    expect(m.pcId).toBe(5);
    expect(m.command.Status).toBe(0);
  });

  it('8. responses to our own requests are matched and forgotten (Network.pending never shrank)', async () => {
    // C-GET sub-operations are our requests; after a retrieve nothing is left waiting.
    const store = await run('storescu', ['-aet', 'WS1', '-aec', AE, ...tlsArgs(dev, env.caPath), '127.0.0.1', String(env.port), '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm']);
    expect(store.code).toBe(0);
    const { c } = await established([
      { id: 1, abstractSyntax: UID.StudyRootGet, transferSyntaxes: [UID.ImplicitLE] },
      { id: 3, abstractSyntax: UID.CtStorage, transferSyntaxes: [UID.ExplicitLE] },
    ], { roles: [{ abstractSyntax: UID.CtStorage, scu: false, scp: true }] });
    c.send(pdata(1, true, true, commandSet({ CommandField: 0x0010, MessageID: 2, AffectedSOPClassUID: UID.StudyRootGet, Priority: 0, CommandDataSetType: 0x0000 })));
    c.send(pdata(1, false, true, dataset({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322' })));
    const sub = await c.message();
    expect(sub.command.CommandField).toBe(0x0001);
    expect(env.server.associations().some((a) => a.awaitingResponses === 1)).toBe(true);
    c.send(pdata(3, true, true, commandSet({ CommandField: 0x8001, MessageIDBeingRespondedTo: sub.command.MessageID, AffectedSOPClassUID: UID.CtStorage, AffectedSOPInstanceUID: sub.command.AffectedSOPInstanceUID, CommandDataSetType: 0x0101, Status: 0 })));
    const final = await c.message();
    expect(final.command.Status).toBe(0);
    expect(final.command.NumberOfCompletedSuboperations).toBe(1);
    const diag = env.server.associations();
    expect(diag.every((a) => a.awaitingResponses === 0 && a.dcmjsPending === 0 && a.dcmjsRequests === 0)).toBe(true);
  });

  it('9. C-STORE data is streamed to disk with backpressure, not collected in memory', async () => {
    v8.setFlagsFromString('--expose_gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const { c } = await established([{ id: 1, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ExplicitLE] }]);
    gc();
    const before = process.memoryUsage();
    c.send(pdata(1, true, true, commandSet({ CommandField: 0x0001, MessageID: 3, AffectedSOPClassUID: UID.SecondaryCapture, AffectedSOPInstanceUID: '1.2.3.999.1', Priority: 0, CommandDataSetType: 0x0000 })));
    // 120 MiB of data set in 1 MiB PDUs (not a valid object: it must travel through a file all the same).
    const chunk = Buffer.alloc(1024 * 1024 - 6, 0x41);
    for (let i = 0; i < 119; i++) {
      if (!c.socket.write(pdata(1, false, false, chunk))) await new Promise((r) => c.socket.once('drain', r));
    }
    // Wait until the server has taken (nearly) all of it, then see what is still held in memory.
    const tmp = path.join(env.dir, 'tmp');
    for (let i = 0; i < 300; i++) {
      const sizes = await Promise.all((await fs.readdir(tmp)).map((f) => fs.stat(path.join(tmp, f)).then((s) => s.size, () => 0)));
      if (sizes.some((n) => n >= 117 * 1024 * 1024)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    gc();
    const held = process.memoryUsage();
    c.send(pdata(1, false, true, chunk));
    const m = await c.message(20_000);
    expect(m.command.Status).not.toBe(0); // refused by ingest after the transfer: not a DICOM object
    // dcmjs-dimse's MemoryStream would hold all 118 MiB here. (The margin covers PGlite's
    // WebAssembly memory, which grows with the audit rows written meanwhile and never shrinks.)
    expect(held.heapUsed + held.arrayBuffers - before.heapUsed - before.arrayBuffers).toBeLessThan(48 * 1024 * 1024);
    expect(await fs.readdir(tmp)).toEqual([]);
  });

  it('10. P-DATA on a presentation context that was rejected is an A-ABORT, not a dispatch', async () => {
    const { c } = await established([echoCtx, { id: 3, abstractSyntax: UID.Worklist, transferSyntaxes: [UID.ImplicitLE] }]);
    c.send(pdata(3, true, true, commandSet({ CommandField: 0x0020, MessageID: 1, AffectedSOPClassUID: UID.Worklist, Priority: 0, CommandDataSetType: 0x0101 })));
    expect((await c.closed()).map((p) => p.type)).toEqual([0x07]);
  });

  it('11. the A-ASSOCIATE-AC does not echo an asynchronous operations window we do not implement', async () => {
    const { ac } = await established([echoCtx], { asyncOps: [5, 5] });
    expect(acUserItems(ac).has(0x53)).toBe(false);
  });

  it('12. a peer announcing an unlimited PDU size gets our limit in the AC, not "unlimited"', async () => {
    const { ac } = await established([echoCtx], { maxPdu: 0 });
    expect(acUserItems(ac).get(0x51)![0].readUInt32BE(0)).toBe(1024 * 1024);
  });

  it('13. dcmjs logs nothing (it prints element values, i.e. patient data, as warnings)', () => {
    expect((dimse.log as unknown as { getLevel(): number }).getLevel()).toBe(5);
    expect((nestedDcmjs.log as unknown as { getLevel(): number }).getLevel()).toBe(5);
  });

  it('14. a command set without end and an oversized identifier are refused', async () => {
    const { c } = await established([echoCtx]);
    const piece = Buffer.alloc(16 * 1024);
    for (let i = 0; i < 5; i++) c.send(pdata(1, true, false, piece));
    expect((await c.closed()).map((p) => p.type)).toEqual([0x07]);
  });

  it('15. a user identity is checked even when no positive response is requested', async () => {
    await env.user('alice', 'correct horse battery', [['radiology', 'reader']]);
    const c = await connectRaw(env.port, { caPath: env.caPath });
    const r = await associate(c, { callingAe: 'ANYWS', contexts: [echoCtx], userIdentity: { type: 2, primary: 'alice', secondary: 'wrong password!!', positive: false } });
    expect(r !== 'closed' && r.type).toBe(0x03);
    const ok = await connectRaw(env.port, { caPath: env.caPath });
    const a = await associate(ok, { callingAe: 'ANYWS', contexts: [echoCtx], userIdentity: { type: 2, primary: 'alice', secondary: 'correct horse battery', positive: true } });
    expect(a !== 'closed' && a.type).toBe(0x02);
    // Positive response requested → a (zero-length) server response item (PS3.7 D.3.3.7.2).
    expect(acUserItems((a as { body: Buffer }).body).get(0x59)?.[0]).toEqual(Buffer.from([0, 0]));
  });

  it('16. the AE-title check for the calling AE goes through the certificate, not the RQ alone', async () => {
    const c = await open();
    const r = await associate(c, { callingAe: 'SOMEONE', contexts: [echoCtx] });
    expect(r !== 'closed' && r.type).toBe(0x03);
    expect((r as { body: Buffer }).body.subarray(1, 4)).toEqual(Buffer.from([1, 1, 3]));
  });

  it('keeps serving after all of this', async () => {
    const echo = await run('echoscu', ['-aet', 'WS1', '-aec', AE, ...tlsArgs(dev, env.caPath), '127.0.0.1', String(env.port)]);
    expect(echo.code).toBe(0);
  });
});

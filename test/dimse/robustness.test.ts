// Hostile and broken peers while a well-behaved modality works: oversized PDU
// lengths, truncated PDUs, garbage after the TLS handshake, 200 idle connections,
// peers that stop reading. The server aborts them, stays within bounded memory, and
// storescu keeps storing at the same time.

import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AE, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { associate, commandSet, connectRaw, dataset, echoCommand, pdata, UID, type RawClient } from '../helpers/dimse-raw.js';
import { run, tlsArgs } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc') as () => void;
const memory = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const FILES = ['CT_small.dcm', 'MR_small.dcm', 'rtplan.dcm', 'waveform_ecg.dcm'].map((f) => path.join(SAMPLE_DIR, f));
const BIG = { study: '1.2.826.0.1.3680043.10.1376.9.1', series: '1.2.826.0.1.3680043.10.1376.9.1.1', sop: '1.2.826.0.1.3680043.10.1376.9.1.1.1' };
const echoCtx = [{ id: 1, abstractSyntax: UID.Verification as string, transferSyntaxes: [UID.ImplicitLE as string] }];

describe('robustness', () => {
  let env: DimseEnv;
  let dev: DeviceCreds;

  beforeAll(async () => {
    // Limits above the number of hostile connections, so that the timers (not the limits) must clean up.
    env = await startDimseEnv({ limits: { maxAssociations: 400, maxAssociationsPerAddress: 400 }, tuning: { artimMs: 8_000, maxPendingConnections: 400, maxPendingPerAddress: 400 } });
    dev = await env.device('CT01', [['radiology', 'writer'], ['radiology', 'reader']]);
    // A 24 MB object to retrieve: what a peer that stops reading never takes.
    const c = await connectRaw(env.port, { creds: dev, caPath: env.caPath });
    await associate(c, { callingAe: 'CT01', contexts: [{ id: 1, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ExplicitLE] }], maxPdu: 1 << 20 });
    c.send(pdata(1, true, true, commandSet({ CommandField: 0x0001, MessageID: 1, AffectedSOPClassUID: UID.SecondaryCapture, AffectedSOPInstanceUID: BIG.sop, Priority: 0, CommandDataSetType: 0 })));
    const body = dataset(
      {
        SOPClassUID: UID.SecondaryCapture, SOPInstanceUID: BIG.sop, StudyInstanceUID: BIG.study, SeriesInstanceUID: BIG.series,
        PatientID: 'BIG1', Modality: 'OT', Rows: 2048, Columns: 2048, BitsAllocated: 16, BitsStored: 16, HighBit: 15, PixelRepresentation: 0,
        SamplesPerPixel: 1, PhotometricInterpretation: 'MONOCHROME2', NumberOfFrames: '3', PixelData: [new Uint8Array(2048 * 2048 * 2 * 3).buffer],
        _vrMap: { PixelData: 'OW' },
      },
      UID.ExplicitLE,
    );
    for (let off = 0; off < body.length; off += 1 << 19) c.send(pdata(1, false, off + (1 << 19) >= body.length, body.subarray(off, off + (1 << 19))));
    const m = await c.message(30_000);
    expect(m.command.Status).toBe(0);
    c.destroy();
  }, 60_000);
  afterAll(async () => env?.close());

  const connect = () => connectRaw(env.port, { creds: dev, caPath: env.caPath });
  const storescu = () => run('storescu', ['-aet', 'CT01', '-aec', AE, ...tlsArgs(dev, env.caPath), '127.0.0.1', String(env.port), ...FILES], { timeoutMs: 30_000 });

  it('an oversized PDU length: A-ABORT at once', async () => {
    const c = await connect();
    c.send(Buffer.from([0x01, 0x00, 0x7f, 0xff, 0xff, 0xff]));
    expect((await c.closed(2000)).map((p) => p.type)).toEqual([0x07]);
  });

  it('a truncated PDU: aborted when the PDU deadline passes, or cleaned up when the peer goes away mid-store', async () => {
    const c = await connect();
    const rq = await associate(c, { callingAe: 'CT01', contexts: echoCtx });
    expect(rq !== 'closed' && rq.type).toBe(0x02);
    const full = pdata(1, true, true, echoCommand(1));
    c.send(full.subarray(0, full.length - 10));
    const t0 = Date.now();
    expect((await c.closed(6000)).map((p) => p.type)).toEqual([0x07]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2500); // pduMs = 3 s in these tests

    // Half a C-STORE, then the connection drops: no temporary file is left behind.
    const s = await connect();
    await associate(s, { callingAe: 'CT01', contexts: [{ id: 1, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ExplicitLE] }] });
    s.send(pdata(1, true, true, commandSet({ CommandField: 0x0001, MessageID: 1, AffectedSOPClassUID: UID.SecondaryCapture, AffectedSOPInstanceUID: '1.2.3.4.5', Priority: 0, CommandDataSetType: 0 })));
    s.send(pdata(1, false, false, Buffer.alloc(200_000, 1)));
    await new Promise((r) => setTimeout(r, 200));
    const tmp = path.join(env.dir, 'tmp');
    expect((await fs.readdir(tmp)).length).toBe(1);
    s.destroy();
    for (let i = 0; i < 50 && (await fs.readdir(tmp)).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await fs.readdir(tmp)).toEqual([]);
  });

  it('a TCP connection that never completes the TLS handshake is closed after the handshake timeout', async () => {
    const s = net.connect(env.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    const t0 = Date.now();
    await new Promise((r) => s.once('close', r));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2500); // handshakeTimeoutMs = 3 s in these tests
    expect(Date.now() - t0).toBeLessThan(6000);
  });

  it('garbage after the TLS handshake: A-ABORT, whatever it is', async () => {
    for (let i = 0; i < 10; i++) {
      const c = await connect();
      const junk = crypto.randomBytes(512);
      junk[0] = [0x00, 0x08, 0x42, 0xff, 0x04, 0x02][i % 6]; // unknown types, and P-DATA/AC in the wrong state
      c.send(junk);
      const seen = await c.closed(4000);
      expect(seen.length <= 1 && seen.every((p) => p.type === 0x07)).toBe(true);
    }
  });

  it('200 idle connections, truncated and garbage peers and peers that stop reading, while storescu keeps storing', async () => {
    const base = memory();
    const hostile: RawClient[] = [];
    // 200 idle TLS connections that never send an A-ASSOCIATE-RQ.
    let t = Date.now();
    for (let i = 0; i < 4; i++) hostile.push(...(await Promise.all(Array.from({ length: 50 }, () => connect()))));
    console.log('200 connections in', Date.now() - t, 'ms');
    t = Date.now();
    // Peers that stop reading: a C-GET of 24 MB whose C-STORE sub-operation is never read.
    const deaf: RawClient[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await connect();
      await associate(c, {
        callingAe: 'CT01',
        contexts: [{ id: 1, abstractSyntax: UID.StudyRootGet, transferSyntaxes: [UID.ImplicitLE] }, { id: 3, abstractSyntax: UID.SecondaryCapture, transferSyntaxes: [UID.ExplicitLE] }],
        roles: [{ abstractSyntax: UID.SecondaryCapture, scu: false, scp: true }],
        maxPdu: 1 << 20,
      });
      c.socket.pause();
      c.send(pdata(1, true, true, commandSet({ CommandField: 0x0010, MessageID: 1, AffectedSOPClassUID: UID.StudyRootGet, Priority: 0, CommandDataSetType: 0 })));
      c.send(pdata(1, false, true, dataset({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: BIG.study })));
      deaf.push(c);
    }
    // Truncated PDUs and junk.
    for (let i = 0; i < 20; i++) {
      const c = await connect();
      c.send(i % 2 ? crypto.randomBytes(300) : Buffer.from([0x01, 0, 0, 0, 0x10, 0, 1, 2, 3]));
      hostile.push(c);
    }
    console.log('hostile peers in', Date.now() - t, 'ms');
    expect(env.server.connections()).toBeGreaterThanOrEqual(205); // junk is aborted at once

    // A well-behaved modality, three times over, meanwhile.
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) {
      const r = await storescu();
      expect(r.code, r.stderr).toBe(0);
    }
    const storeMs = Date.now() - t0;
    expect(storeMs).toBeLessThan(10_000);
    const peak = memory() - base;
    console.log('storescu x3 in', storeMs, 'ms; memory +', Math.round(peak / 1e6), 'MB;', env.server.connections(), 'connections');

    // Every hostile connection is closed by the server's timers (ARTIM 8 s, PDU 3 s, write stall 3 s).
    await Promise.all([...hostile, ...deaf].map((c) => c.closed(10_000).catch(() => [])));
    for (let i = 0; i < 100 && env.server.connections() > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(env.server.connections()).toBe(0);
    for (const c of deaf) c.destroy();
    // The peers that stopped reading were cut off by the write-stall deadline (the C-GET kept the idle timer off).
    const stalls = (await env.audit.list({ action: 'security-alert', limit: 1000 })).filter((r) => r.details.reason === 'write-stall');
    expect(stalls.length).toBe(5);
    expect(peak).toBeLessThan(96 * 1024 * 1024);
    await new Promise((r) => setTimeout(r, 200));
    memory();
    const after = memory() - base;
    // Back to where it started, give or take what the test itself keeps (clients, logs, audit rows).
    expect(after).toBeLessThan(32 * 1024 * 1024);
  }, 60_000);
});

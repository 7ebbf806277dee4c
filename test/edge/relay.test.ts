// The relay at the PDU level, with a hand-rolled plain client through the edge to a
// real Tresor: the AC's Maximum Length is capped at the edge's limit (PS3.8 §D.1),
// C-ECHO and A-RELEASE pass, an A-ABORT from the device reaches Tresor, and a
// P-DATA-TF above the edge's limit is an A-ABORT on both sides.

import net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemPrincipal } from '../../src/core/principal.js';
import { writeEdgeBundle } from '../../src/edge/bundle.js';
import { loadEdgeConfig } from '../../src/edge/config.js';
import { startEdge, type RunningEdge } from '../../src/edge/edge.js';
import { announcedMaxLength } from '../../src/edge/user-info.js';
import { createLogger } from '../../src/log.js';
import { AE, startDimseEnv, type DimseEnv } from '../helpers/dimse-env.js';
import { associateRq, echoCommand, parseCommand, pdata, pdvsOf, pdu, RawClient, releaseRq, UID } from '../helpers/dimse-raw.js';

const EDGE_MAX = 65536;

async function plainClient(port: number): Promise<RawClient> {
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port }, () => resolve(c));
    c.on('error', reject);
  });
  // RawClient only uses the socket's stream events: a plain socket does as well as a TLS one.
  return new RawClient(s as unknown as tls.TLSSocket);
}

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const t = Date.now() + ms;
  while (!check()) {
    if (Date.now() > t) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('tresor edge relay', () => {
  let env: DimseEnv;
  let edge: RunningEdge;
  let port: number;
  const rq = () => associateRq({ callingAe: 'CT01', calledAe: AE, maxPdu: 0, contexts: [{ id: 1, abstractSyntax: UID.Verification, transferSyntaxes: [UID.ImplicitLE] }] });
  const tresorClosed = (reason: string) => env.logs.filter((l) => l.includes('dimse association closed') && l.includes(`"reason":"${reason}"`)).length;

  beforeAll(async () => {
    env = await startDimseEnv();
    await env.device('CT01', [['radiology', 'writer']], { certificate: false });
    const issued = await env.identity.admin.issueDeviceCertificate(systemPrincipal, 'CT01', {});
    const file = await writeEdgeBundle(path.join(env.dir, 'edge'), {
      edgeName: 'RELAY',
      aeTitle: 'CT01',
      certificatePem: issued.certificate,
      privateKeyPem: issued.privateKey!,
      caPem: env.pki.caCertPem,
      tresor: { host: '127.0.0.1', port: env.port, aeTitle: AE },
      listen: { host: '127.0.0.1', port: 0 },
      allow: ['127.0.0.1'],
    });
    const cfg = await loadEdgeConfig(file);
    edge = await startEdge({ ...cfg, limits: { ...cfg.limits, maxPduBytes: EDGE_MAX } }, createLogger('silent'));
    port = edge.upstream[0].port;
  }, 120_000);
  afterAll(async () => {
    await edge?.close();
    await env?.close();
  });

  it('caps the announced maximum length, relays C-ECHO and A-RELEASE', async () => {
    const c = await plainClient(port);
    c.send(rq());
    const ac = await c.next();
    if (ac === 'closed') throw new Error('closed');
    expect(ac.type).toBe(0x02);
    // Tresor announces 1 MiB; the device hears the edge's limit.
    expect(announcedMaxLength(pdu(0x02, ac.body))).toBe(EDGE_MAX);
    c.send(pdata(1, true, true, echoCommand(7)));
    const rsp = await c.next();
    if (rsp === 'closed') throw new Error('closed');
    const cmd = parseCommand(pdvsOf(rsp.body)[0].value);
    expect(cmd).toMatchObject({ CommandField: 0x8030, MessageIDBeingRespondedTo: 7, Status: 0 });
    c.send(releaseRq());
    const rp = await c.next();
    expect(rp === 'closed' ? 'closed' : rp.type).toBe(0x06);
    expect(await c.closed()).toEqual([]);
  });

  it('relays an A-ABORT from the device to Tresor', async () => {
    const before = tresorClosed('peer-abort');
    const c = await plainClient(port);
    c.send(rq());
    expect(((await c.next()) as { type: number }).type).toBe(0x02);
    c.send(Buffer.from([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    await c.closed();
    await until(() => tresorClosed('peer-abort') > before);
  });

  it('a P-DATA-TF above the edge\'s limit: A-ABORT to the device and to Tresor', async () => {
    const before = tresorClosed('peer-abort');
    const c = await plainClient(port);
    c.send(rq());
    expect(((await c.next()) as { type: number }).type).toBe(0x02);
    const head = Buffer.alloc(6);
    head[0] = 0x04;
    head.writeUInt32BE(EDGE_MAX + 1, 2);
    c.send(head);
    const seen = await c.closed();
    expect(seen.map((p) => p.type)).toEqual([0x07]);
    await until(() => tresorClosed('peer-abort') > before);
  });
});

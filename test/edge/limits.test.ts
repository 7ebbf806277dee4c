// The edge's own limits, before anything goes upstream: connections per address,
// ARTIM (no A-ASSOCIATE-RQ in time → closed, PS3.8 §9.1.5), an association PDU
// above 128 KiB refused from its header (dimse/protocol/guard.ts), and garbage.
// No Tresor is needed: none of these may ever reach it.

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_EDGE_LIMITS, DEFAULT_EDGE_TIMEOUTS, type EdgeConfig } from '../../src/edge/config.js';
import { startEdge, type RunningEdge } from '../../src/edge/edge.js';
import { createLogger } from '../../src/log.js';
import { startCountingProxy, type CountingProxy } from './edge-tools.js';

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Resolves with what the edge sent once it closed the connection, and how long that took. */
function untilClosed(s: net.Socket, timeoutMs = 10_000): Promise<{ data: Buffer; ms: number }> {
  const t0 = Date.now();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ data: Buffer.concat(chunks), ms: Date.now() - t0 }));
    setTimeout(() => reject(new Error('not closed in time')), timeoutMs).unref();
  });
}

describe('tresor edge limits', () => {
  let edge: RunningEdge;
  let upstream: CountingProxy;
  let port: number;

  beforeAll(async () => {
    // Stands in for Tresor: counts connections (there must be none) and forwards nowhere useful.
    upstream = await startCountingProxy(1);
    const cfg: EdgeConfig = {
      name: 'LIMITS',
      tresor: { host: '127.0.0.1', port: upstream.port, aeTitle: 'TRESOR', serverName: '127.0.0.1', caFile: '', caPem: '' },
      devices: [{ aeTitle: 'CT01', certFile: '', keyFile: '', certPem: '', keyPem: '', listen: { host: '127.0.0.1', port: 0 }, allow: ['127.0.0.1'] }],
      limits: { ...DEFAULT_EDGE_LIMITS, maxConnectionsPerAddress: 2 },
      timeouts: { ...DEFAULT_EDGE_TIMEOUTS, artimMs: 2_500, connectMs: 500 },
    };
    edge = await startEdge(cfg, createLogger('silent'));
    port = edge.upstream[0].port;
  });
  afterAll(async () => {
    await edge?.close();
    await upstream?.close();
  });

  it('refuses a third connection from one address', async () => {
    const a = await connect(port);
    const b = await connect(port);
    const c = await connect(port);
    const third = await untilClosed(c, 3_000);
    expect(third.data.length).toBe(0);
    expect(a.destroyed || b.destroyed).toBe(false);
    a.destroy();
    b.destroy();
  });

  it('closes a connection that sends no A-ASSOCIATE-RQ within ARTIM', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const s = await connect(port);
    const r = await untilClosed(s);
    expect(r.ms).toBeGreaterThanOrEqual(2_000);
    expect(r.ms).toBeLessThan(6_000);
  });

  it('aborts an association PDU announced above 128 KiB, and garbage, from the header', async () => {
    const big = Buffer.alloc(6);
    big[0] = 0x01;
    big.writeUInt32BE(129 * 1024, 2);
    const s = await connect(port);
    s.write(big);
    const r = await untilClosed(s);
    expect([...r.data]).toEqual([0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6]);
    const g = await connect(port);
    g.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect((await untilClosed(g)).data[0]).toBe(0x07);
    expect(upstream.connections()).toBe(0);
  });
});

// Unauthenticated connection exhaustion (issue 14, item 4): idle sockets from a few
// loopback addresses (127.0.0.2–5) — some that never start TLS, some that finish TLS and
// never send an A-ASSOCIATE-RQ — reconnecting as soon as they are closed, while a
// registered device keeps storing with dcmtk's storescu from 127.0.0.1. With the old
// single pool (every TCP connection counted against the association limits) the flood
// held every slot; now pending connections have their own small pool, per address and in
// total, with eviction of the busiest address's oldest, and every store must succeed.

import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AE, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { connectRaw } from '../helpers/dimse-raw.js';
import { run, tlsArgs } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const CT = path.join(SAMPLE_DIR, 'CT_small.dcm');
const ATTACKERS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
/** Connections each attacking address tries to keep open (twice what it may hold). */
const PER_ATTACKER = 4;

describe('unauthenticated connection flood', () => {
  let env: DimseEnv;
  let device: DeviceCreds;

  beforeAll(async () => {
    env = await startDimseEnv({
      // The association limits the flood used to exhaust: 4 attackers × 4 sockets = 16 ≥ 8.
      limits: { maxAssociations: 8, maxAssociationsPerAddress: 4 },
      tuning: { maxPendingConnections: 6, maxPendingPerAddress: 2, handshakeTimeoutMs: 3_000, artimMs: 3_000 },
    });
    device = await env.device('CT01', [['radiology', 'writer']]);
  }, 60_000);
  afterAll(async () => env?.close());

  it('a flood from four addresses does not keep a device from storing', async () => {
    let stop = false;
    let attempts = 0;
    let maxPending = 0;
    const live = new Set<{ destroy(): void }>();

    // One attacking slot: connect, sit idle until the server closes it, reconnect. Bounded by `stop`.
    async function slot(address: string, tlsToo: boolean): Promise<void> {
      while (!stop) {
        attempts++;
        await new Promise<void>((resolve) => {
          const done = () => resolve();
          if (tlsToo) {
            connectRaw(env.port, { caPath: env.caPath, localAddress: address }).then(
              (c) => {
                live.add(c);
                c.socket.once('close', () => (live.delete(c), done()));
                if (stop) c.destroy();
              },
              done,
            );
          } else {
            const s = net.connect({ host: '127.0.0.1', port: env.port, localAddress: address });
            live.add(s);
            s.on('error', () => undefined);
            s.once('close', () => (live.delete(s), done()));
            if (stop) s.destroy();
          }
        });
        maxPending = Math.max(maxPending, env.server.connections());
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    const flood = ATTACKERS.flatMap((a) => Array.from({ length: PER_ATTACKER }, (_, i) => slot(a, i % 2 === 1)));
    try {
      // Let the flood fill every pending slot first.
      await new Promise((r) => setTimeout(r, 1_500));
      const results: { code: number | null; out: string }[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await run('storescu', ['-aet', 'CT01', '-aec', AE, ...tlsArgs(device, env.caPath), '127.0.0.1', String(env.port), CT], { timeoutMs: 30_000 });
        results.push({ code: r.code, out: r.stdout + r.stderr });
        await new Promise((res) => setTimeout(res, 300));
      }
      for (const r of results) expect(r.code, r.out).toBe(0);
    } finally {
      stop = true;
      for (const s of live) s.destroy();
      await Promise.all(flood);
    }
    // The flood really ran, and it was held to its pool: pending (6) + associations (8) at most.
    expect(attempts).toBeGreaterThan(ATTACKERS.length * PER_ATTACKER);
    expect(maxPending).toBeLessThanOrEqual(6 + 8);
    const refused = env.logs.filter((l) => /pending connection evicted|connection refused: limit reached/.test(l));
    expect(refused.length, 'the listener refused or evicted flood connections').toBeGreaterThan(0);
  }, 180_000);
});

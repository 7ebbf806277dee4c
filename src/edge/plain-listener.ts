// The edge's plain-TCP listener for legacy devices (DICOM without TLS, PS3.8 §9.1).
// Connections are counted at accept, in total over all the edge's device listeners
// and per remote address, like dimse/protocol/listener.ts does for TLS (README.md
// defect 3): a device that loops on connect cannot exhaust the edge.

import net from 'node:net';
import type { Logger } from 'pino';
import { normalizeAddress } from '../dimse/protocol/listener.js';

export interface ConnectionBudget {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  open: Set<net.Socket>;
  perAddress: Map<string, number>;
}

export function connectionBudget(maxConnections: number, maxConnectionsPerAddress: number): ConnectionBudget {
  return { maxConnections, maxConnectionsPerAddress, open: new Set(), perAddress: new Map() };
}

export interface PlainListener {
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function listenPlain(o: {
  host: string;
  port: number;
  budget: ConnectionBudget;
  logger: Logger;
  onConnection(socket: net.Socket, remoteAddress: string): void;
}): Promise<PlainListener> {
  const b = o.budget;
  const mine = new Set<net.Socket>();
  let refused = 0;
  const server = net.createServer((socket) => {
    const address = normalizeAddress(socket.remoteAddress);
    const n = b.perAddress.get(address) ?? 0;
    if (b.open.size >= b.maxConnections || n >= b.maxConnectionsPerAddress) {
      if (refused++ % 100 === 0) o.logger.warn({ address, open: b.open.size, fromAddress: n, refused }, 'edge connection refused: limit reached');
      socket.destroy();
      return;
    }
    b.open.add(socket);
    mine.add(socket);
    b.perAddress.set(address, n + 1);
    // Nagle + delayed ACK stalls every DIMSE round trip by ~40 ms (../shared/bench/CLIENTS.md).
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.once('close', () => {
      b.open.delete(socket);
      mine.delete(socket);
      const left = (b.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) b.perAddress.delete(address);
      else b.perAddress.set(address, left);
    });
    try {
      o.onConnection(socket, address);
    } catch (e) {
      o.logger.error({ err: e instanceof Error ? e.message : String(e) }, 'edge connection handler failed');
      socket.destroy();
    }
  });
  server.on('error', (err) => o.logger.error({ err: err.message }, 'edge listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    host: o.host,
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of mine) s.destroy();
      }),
  };
}

// The scrape listener: GET /metrics in the Prometheus text exposition format, on its
// own port (TRESOR_METRICS_PORT), apart from the HTTPS API so that it can be bound to
// loopback or a management network. Off loopback a bearer token is required (config.ts
// refuses to start without one); with a token file set, every scrape must send it,
// whatever the address. Plain HTTP: the token then travels in clear, which is why the
// README advises loopback or a scraper on the same host / a trusted network.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export class MetricsStartError extends Error {}

/** The bearer token from its file: private to Tresor (mode 0600), one line, at least 16 characters. */
export async function readMetricsToken(file: string): Promise<string> {
  let st;
  try {
    st = await stat(file);
  } catch {
    throw new MetricsStartError(`TRESOR_METRICS_TOKEN_FILE ${file} cannot be read: create it with a random token (e.g. umask 077; openssl rand -hex 32 > ${file})`);
  }
  if ((st.mode & 0o077) !== 0) throw new MetricsStartError(`TRESOR_METRICS_TOKEN_FILE ${file} is accessible to group or others: run chmod 600 ${file}`);
  const token = (await readFile(file, 'utf8')).trim();
  if (token.length < 16 || /\s/.test(token)) throw new MetricsStartError(`TRESOR_METRICS_TOKEN_FILE ${file} must hold one token of at least 16 characters without spaces`);
  return token;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export async function startMetricsServer(o: { host: string; port: number; registry: Registry; token?: string }): Promise<MetricsServer> {
  const expected = o.token === undefined ? undefined : digest(`Bearer ${o.token}`);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    // Compared as hashes: constant time whatever the length sent.
    if (expected && !timingSafeEqual(digest(String(req.headers.authorization ?? '')), expected)) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="tresor-metrics"' }).end('send the token of TRESOR_METRICS_TOKEN_FILE as Authorization: Bearer\n');
      return;
    }
    o.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': o.registry.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n'),
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

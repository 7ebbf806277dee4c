// The DIMSE listening socket: TLS only (there is no plaintext DIMSE port), owned
// here rather than by dcmjs-dimse's Server so that we control the TLS settings,
// the handshake deadline, connection limits in total and per remote address
// (dcmjs-dimse has none, README.md defect 3), and TCP_NODELAY on every socket.
//
// Client certificates are requested but not required by the TLS layer
// (rejectUnauthorized: false): PS3.15 §B.1 allows a connection without one when
// the association then authenticates with user identity (PS3.7 §D.3.3.7), and the
// TLS layer cannot know that yet. association.ts decides, with socket.authorized
// (the chain to Tresor's CA was verified by OpenSSL) and the certificate binding.

import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';

/**
 * BCP 195 (RFC 9325 §4.2) suites: AEAD only, forward secrecy only. TLS 1.3 suites
 * first; for TLS 1.2 ECDHE with AES-GCM (what dcmtk 3.6.7's default BCP 195
 * profile offers) and ChaCha20-Poly1305.
 */
export const BCP195_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_AES_128_GCM_SHA256',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-AES128-GCM-SHA256',
].join(':');

export interface ListenerOptions {
  host: string;
  port: number;
  keyPem: string;
  certPem: string;
  /** The CA(s) whose client certificates are verified (Tresor's CA). */
  caPem: string;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  handshakeTimeoutMs: number;
  logger: Logger;
  /** A TLS connection whose handshake completed. */
  onConnection(socket: tls.TLSSocket, remoteAddress: string): void;
}

export interface TlsListener {
  port: number;
  /** Open TCP connections (including handshakes in progress). */
  connectionCount(): number;
  /** Stops accepting; destroys every socket still open after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

/** "::ffff:127.0.0.1" and "127.0.0.1" are the same peer. */
export function normalizeAddress(a: string | undefined): string {
  if (!a) return 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export async function listenTls(o: ListenerOptions): Promise<TlsListener> {
  const sockets = new Set<net.Socket>();
  const perAddress = new Map<string, number>();
  let refusedSinceLog = 0;

  const server = tls.createServer({
    key: o.keyPem,
    cert: o.certPem,
    ca: o.caPem,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    ciphers: BCP195_CIPHERS,
    honorCipherOrder: true,
    handshakeTimeout: o.handshakeTimeoutMs,
    // Finite DH parameters chosen by OpenSSL for the DHE suites (RFC 7919 groups).
    dhparam: 'auto',
  });

  // Counted at TCP accept, before any TLS work, so that a flood of handshakes is bounded too.
  server.prependListener('connection', (socket: net.Socket) => {
    const address = normalizeAddress(socket.remoteAddress);
    const n = perAddress.get(address) ?? 0;
    if (sockets.size >= o.maxConnections || n >= o.maxConnectionsPerAddress) {
      refusedSinceLog++;
      if (refusedSinceLog === 1 || refusedSinceLog % 100 === 0) {
        o.logger.warn({ address, open: sockets.size, fromAddress: n, refused: refusedSinceLog }, 'dimse connection refused: limit reached');
      }
      socket.destroy();
      return;
    }
    sockets.add(socket);
    perAddress.set(address, n + 1);
    // Nagle + delayed ACK stalls every DIMSE round trip by ~40 ms with dcmtk peers.
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.once('close', () => {
      sockets.delete(socket);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
  });

  server.on('secureConnection', (socket: tls.TLSSocket) => {
    if (socket.destroyed) return;
    socket.setNoDelay(true);
    try {
      o.onConnection(socket, normalizeAddress(socket.remoteAddress));
    } catch (e) {
      o.logger.error({ err: e instanceof Error ? e.message : String(e) }, 'dimse connection handler failed');
      socket.destroy();
    }
  });

  // At most 20 handshake failures logged per minute, then a count: a flood must not flood the log.
  let failuresLogged = 0;
  let failuresSuppressed = 0;
  const window = setInterval(() => {
    if (failuresSuppressed > 0) o.logger.warn({ suppressed: failuresSuppressed }, 'dimse TLS handshake failures not logged in the last minute');
    failuresLogged = 0;
    failuresSuppressed = 0;
  }, 60_000);
  window.unref();
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    // Plaintext DICOM on the TLS port shows up here as "wrong version number"; so do handshake timeouts.
    if (failuresLogged++ < 20) o.logger.info({ address: normalizeAddress(socket?.remoteAddress), code: err.code ?? err.message }, 'dimse TLS handshake failed');
    else failuresSuppressed++;
    socket?.destroy();
  });

  server.on('error', (err) => o.logger.error({ err: err.message }, 'dimse listener error'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    connectionCount: () => sockets.size,
    close: (graceMs = 0) =>
      new Promise<void>((resolve) => {
        clearInterval(window);
        server.close(() => resolve());
        const kill = () => {
          for (const s of sockets) s.destroy();
        };
        if (graceMs > 0) setTimeout(kill, graceMs).unref();
        else kill();
      }),
  };
}

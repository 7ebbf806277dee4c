// The DIMSE listening socket: TLS only (there is no plaintext DIMSE port), owned
// here rather than by dcmjs-dimse's Server so that we control the TLS settings,
// the handshake deadline, connection limits in total and per remote address
// (dcmjs-dimse has none, README.md defect 3), and TCP_NODELAY on every socket.
//
// Two pools (issue 14, item 4). A connection is *pending* from TCP accept until its
// association is accepted (TLS handshake, A-ASSOCIATE-RQ, authentication): nobody knows
// who it is yet, so a few addresses must not be able to hold them all. Pending
// connections have their own, much smaller limits — per address, and in total, where a
// full pool evicts the oldest pending connection of the address holding the most
// (fair: the flooder loses its own, a device's single handshake survives). Once
// authenticated (`admit()`), a connection counts against the association limits
// (`maxAssociations`, `maxAssociationsPerAddress`), which pending connections never touch.
// The phase is also short in time: the TLS handshake deadline here, ARTIM in the guard.
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
  /** One PEM, or several pairs of different key types (OpenSSL picks per handshake, pki/ca.ts servedPairs). */
  keyPem: string | string[];
  certPem: string | string[];
  /** The CA(s) whose client certificates are verified (Tresor's CA). */
  caPem: string;
  /** Authenticated associations, in total and per address. */
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /**
   * Without these (the edge, which authenticates nothing itself), every connection stays
   * pending and the connection limits apply to all, refusing the newest (no eviction).
   * Connections not yet authenticated, in total (the oldest of the busiest address is evicted) and per address (the newest is refused). */
  maxPending?: number;
  maxPendingPerAddress?: number;
  handshakeTimeoutMs: number;
  logger: Logger;
  /**
   * A TLS connection whose handshake completed. `admit()` moves it to the authenticated
   * pool when its association is accepted; false = the association limits are full (refuse it).
   */
  onConnection(socket: tls.TLSSocket, remoteAddress: string, admit: () => boolean): void;
  /** Told of every failed TLS handshake (the log below is itself rate-limited). */
  onHandshakeFailure?(remoteAddress: string, code: string): void;
}

export interface TlsListener {
  port: number;
  /** Open TCP connections (including handshakes in progress). */
  connectionCount(): number;
  /** Connections not authenticated yet. */
  pendingCount(): number;
  /** Stops accepting; destroys every socket still open after `graceMs`. */
  close(graceMs?: number): Promise<void>;
  /** Serves a new certificate (and trusts a new CA) for new connections; open ones keep theirs. */
  setCertificate(pem: { keyPem: string | string[]; certPem: string | string[]; caPem: string }): void;
}

/** "::ffff:127.0.0.1" and "127.0.0.1" are the same peer. */
export function normalizeAddress(a: string | undefined): string {
  if (!a) return 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Counts per address. */
class Tally {
  private readonly n = new Map<string, number>();
  get(a: string): number {
    return this.n.get(a) ?? 0;
  }
  add(a: string, d: number): void {
    const v = this.get(a) + d;
    if (v <= 0) this.n.delete(a);
    else this.n.set(a, v);
  }
  busiest(): string | undefined {
    let best: string | undefined;
    for (const [a, v] of this.n) if (best === undefined || v > this.get(best)) best = a;
    return best;
  }
}

export async function listenTls(o: ListenerOptions): Promise<TlsListener> {
  const sockets = new Set<net.Socket>();
  const twoPools = o.maxPending !== undefined;
  const maxPending = o.maxPending ?? o.maxConnections;
  const maxPendingPerAddress = o.maxPendingPerAddress ?? o.maxConnectionsPerAddress;
  const maxOpen = twoPools ? o.maxConnections + maxPending : o.maxConnections;
  /** Pending connections in arrival order (a Set iterates in insertion order): the first of an address is its oldest. */
  const pending = new Map<net.Socket, string>();
  const pendingBy = new Tally();
  const admittedBy = new Tally();
  let admitted = 0;
  let refusedSinceLog = 0;
  let evictedSinceLog = 0;

  const contextOptions = (pem: { keyPem: string | string[]; certPem: string | string[]; caPem: string }): tls.SecureContextOptions => ({
    key: pem.keyPem,
    cert: pem.certPem,
    ca: pem.caPem,
    minVersion: 'TLSv1.2',
    ciphers: BCP195_CIPHERS,
    honorCipherOrder: true,
    dhparam: 'auto',
  });
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

  const unpend = (socket: net.Socket): void => {
    const a = pending.get(socket);
    if (a === undefined) return;
    pending.delete(socket);
    pendingBy.add(a, -1);
  };

  /** Frees a pending slot: the oldest connection of the address that holds the most. */
  const evictOne = (): void => {
    const victim = pendingBy.busiest();
    for (const [socket, a] of pending) {
      if (a !== victim) continue;
      unpend(socket);
      if (evictedSinceLog++ % 100 === 0) o.logger.warn({ address: a, pending: pending.size, evicted: evictedSinceLog }, 'dimse pending connection evicted: unauthenticated pool full');
      // PS3.8 §9.1.4 note 1: a lack of resources may close a connection before any association.
      socket.destroy();
      return;
    }
  };

  // Counted at TCP accept, before any TLS work, so that a flood of handshakes is bounded too.
  server.prependListener('connection', (socket: net.Socket) => {
    const address = normalizeAddress(socket.remoteAddress);
    const fromAddress = pendingBy.get(address);
    if (fromAddress >= maxPendingPerAddress || sockets.size >= maxOpen || (!twoPools && pending.size >= maxPending)) {
      refusedSinceLog++;
      if (refusedSinceLog === 1 || refusedSinceLog % 100 === 0) {
        o.logger.warn({ address, open: sockets.size, pendingFromAddress: fromAddress, refused: refusedSinceLog }, 'dimse connection refused: limit reached');
      }
      socket.destroy();
      return;
    }
    if (pending.size >= maxPending) evictOne();
    sockets.add(socket);
    pending.set(socket, address);
    pendingBy.add(address, 1);
    // Nagle + delayed ACK stalls every DIMSE round trip by ~40 ms with dcmtk peers.
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.once('close', () => {
      sockets.delete(socket);
      unpend(socket);
      if (admittedSockets.delete(socket)) {
        admitted--;
        admittedBy.add(address, -1);
      }
    });
  });
  const admittedSockets = new WeakSet<net.Socket>();

  /** The TLS socket wraps the TCP one (`_parent`… is private): we key by the TCP socket the TLS socket was created on. */
  const admitFor = (tcp: net.Socket, address: string) => (): boolean => {
    if (!pending.has(tcp)) return false; // evicted or closed meanwhile
    if (admitted >= o.maxConnections || admittedBy.get(address) >= o.maxConnectionsPerAddress) return false;
    unpend(tcp);
    admittedSockets.add(tcp);
    admitted++;
    admittedBy.add(address, 1);
    return true;
  };

  server.on('secureConnection', (socket: tls.TLSSocket) => {
    if (socket.destroyed) return;
    socket.setNoDelay(true);
    const tcp = (socket as unknown as { _parent?: net.Socket })._parent ?? socket;
    try {
      o.onConnection(socket, normalizeAddress(socket.remoteAddress), admitFor(tcp, normalizeAddress(socket.remoteAddress)));
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
    o.onHandshakeFailure?.(normalizeAddress(socket?.remoteAddress), String(err.code ?? 'handshake'));
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
    pendingCount: () => pending.size,
    setCertificate: (pem) => server.setSecureContext(contextOptions(pem)),
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

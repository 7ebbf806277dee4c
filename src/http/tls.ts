// HTTPS server options: TLS 1.2 and 1.3 only, and for TLS 1.2
// only the forward-secret AEAD suites that BCP 195 (RFC 9325 §4.2) recommends. TLS 1.3
// suites are all AEAD and stay at Node's defaults. HTTP clients authenticate with bearer
// tokens, so no client certificate is requested (DIMSE asks for one, not this door).

import type { SecureContextOptions, TlsOptions } from 'node:tls';
import { servedPairs, type Pki } from '../pki/ca.js';

/** RFC 9325 §4.2: ECDHE with AES-GCM, in the order the RFC lists, plus ChaCha20-Poly1305 (RFC 7905). */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

export const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;

/** TLS options, plus the HTTP/2 session settings and the HTTP/1.1 timeouts that app.ts applies to the server. */
export type HttpsOptions = TlsOptions &
  SecureContextOptions & {
    allowHTTP1?: boolean;
    settings?: { maxConcurrentStreams?: number; maxHeaderListSize?: number };
    maxHeaderListPairs?: number;
    maxSessionMemory?: number;
    maxOutstandingPings?: number;
    maxSettings?: number;
    maxSessionRejectedStreams?: number;
    maxSessionInvalidFrames?: number;
    unknownProtocolTimeout?: number;
    headersTimeout?: number;
    connectionsCheckingInterval?: number;
  };

export function httpsOptions(pki: Pick<Pki, 'serverCertPem' | 'serverKeyPem' | 'serverEc'>): HttpsOptions {
  // The RSA pair and, when there is one, the ECDSA pair: OpenSSL picks per handshake (pki/ca.ts servedPairs).
  const served = servedPairs(pki);
  return {
    cert: served.certs,
    key: served.keys,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':'),
    honorCipherOrder: true,
    // RFC 9325 §4.2.1: X25519 and P-256 (then P-384) for key exchange.
    ecdhCurve: 'X25519:P-256:P-384',
    requestCert: false,
    // No TLS-level renegotiation tricks or session tickets keyed forever: tickets rotate
    // with the process (Node generates a random ticket key at start).
    sessionTimeout: 300,
    // HTTP/2 (RFC 9113) and HTTP/1.1 on the one port, chosen by ALPN (RFC 7301): Node's
    // HTTP/2 server offers "h2" and, with allowHTTP1, "http/1.1"; a client without ALPN
    // gets HTTP/1.1. A viewer asking for 25 frames at once multiplexes them on one
    // connection instead of queuing behind a browser's six HTTP/1.1 connections.
    allowHTTP1: true,
    // HTTP/2 limits per connection: RFC 9113 §6.5.2 recommends allowing at least 100
    // concurrent streams; header lists as large as Node's HTTP/1.1 parser accepts (16 KiB).
    settings: { maxConcurrentStreams: 100, maxHeaderListSize: 16 * 1024 },
    maxHeaderListPairs: 128,
    // Abusive HTTP/2 clients (test/http/http2-abuse.test.ts), Node's http2 limits written
    // out so they are visible and stay put: a session may hold 10 MB of frames and
    // headers in flight (more → ENHANCE_YOUR_CALM, RFC 9113 §5.4.2), 10 unanswered PINGs
    // and 32 entries per SETTINGS frame (a flood of either closes the session: nghttp2
    // also caps queued control-frame replies a client does not read); a client whose
    // streams beyond maxConcurrentStreams are refused 100 times, or that sends 1000
    // invalid frames, loses the session; a TLS connection that negotiates no protocol is
    // closed after 10 s. A stream blocked by a client that never reads holds at most its
    // flow-control window (64 KiB) plus the stream and file buffers (backpressure); a
    // session with no frame either way for 72 s is closed (app.ts).
    maxSessionMemory: 10,
    maxOutstandingPings: 10,
    maxSettings: 32,
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 1000,
    unknownProtocolTimeout: 10_000,
    // HTTP/1.1 timeouts (app.ts puts them on the server before it listens): a client must
    // send its headers within 10 s (408 otherwise), checked every second so slow
    // clients are cut off promptly rather than up to 30 s late.
    headersTimeout: 10_000,
    connectionsCheckingInterval: 1_000,
  } as HttpsOptions;
}

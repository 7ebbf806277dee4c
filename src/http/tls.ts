// HTTPS server options: TLS 1.2 and 1.3 only, and for TLS 1.2
// only the forward-secret AEAD suites that BCP 195 (RFC 9325 §4.2) recommends. TLS 1.3
// suites are all AEAD and stay at Node's defaults. HTTP clients authenticate with bearer
// tokens, so no client certificate is requested (DIMSE asks for one, not this door).

import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { Pki } from '../pki/ca.js';

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

export type HttpsOptions = TlsOptions & SecureContextOptions & { allowHTTP1?: boolean };

export function httpsOptions(pki: Pick<Pki, 'serverCertPem' | 'serverKeyPem'>): HttpsOptions {
  return {
    cert: pki.serverCertPem,
    key: pki.serverKeyPem,
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
    // node:http server options, read only when the server is created: a client must
    // send its headers within 10 s (408 otherwise), checked every second so slow
    // clients are cut off promptly rather than up to 30 s late.
    headersTimeout: 10_000,
    connectionsCheckingInterval: 1_000,
  } as HttpsOptions;
}

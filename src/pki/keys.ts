// Key material helpers shared by the CA (ca.ts) and device issuance (device-cert.ts).
// Keys are generated with Node's native crypto (OpenSSL, off the event loop) and only
// imported into WebCrypto because @peculiar/x509 signs through the WebCrypto API.
import { createPrivateKey, generateKeyPair, webcrypto, type KeyObject } from 'node:crypto';
import { invalid } from '../core/errors.js';

/**
 * RSA 3072 for the CA and the server: dcmtk 3.6.7's default TLS profile (BCP 195)
 * negotiates only ECDHE-RSA / DHE-RSA AES-GCM suites in TLS 1.2, so the key a server
 * presents must be RSA; 3072 bits gives ~128-bit security (NIST SP 800-57) for keys
 * meant to live for years. Device keys are ECDSA P-256 by default (generateDeviceKeyPair).
 */
const RSA_BITS = 3072;

/**
 * What a device's key pair is, when Tresor generates it. `ec` (the default): ECDSA P-256,
 * the same ~128-bit security as RSA 3072 (NIST SP 800-57) at a small fraction of the cost
 * of every handshake's signature (issue 13: ~2.6 ms per RSA-3072 signature on this
 * machine kind, ~0.03 ms for P-256). A client certificate's key is not bound by the TLS
 * 1.2 cipher suite (the suite names the server's key), so dcmtk's ECDHE-RSA-only profile
 * accepts it. `rsa`: RSA 3072, for a device whose TLS stack cannot load an EC key, or a
 * C-MOVE destination whose storage SCP only serves TLS 1.2 with RSA suites.
 */
export type DeviceKeyType = 'ec' | 'rsa';
export const DEVICE_KEY_TYPES: readonly DeviceKeyType[] = ['ec', 'rsa'];

export interface GeneratedKeyPair {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** SubjectPublicKeyInfo DER, what goes into the certificate. */
  publicKeyDer: Buffer;
}

/** Generates an RSA key pair asynchronously (libuv thread pool, does not block the loop). */
export function generateRsaKeyPair(bits: number = RSA_BITS): Promise<GeneratedKeyPair> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'rsa',
      {
        modulusLength: bits,
        publicExponent: 0x10001,
        publicKeyEncoding: { type: 'spki', format: 'der' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      },
      (err, publicKeyDer, privateKeyPem) => (err ? reject(err) : resolve({ privateKeyPem, publicKeyDer })),
    );
  });
}

/** Generates an ECDSA P-256 key pair asynchronously (libuv thread pool). */
export function generateEcKeyPair(): Promise<GeneratedKeyPair> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'ec',
      {
        namedCurve: 'prime256v1',
        publicKeyEncoding: { type: 'spki', format: 'der' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      },
      (err, publicKeyDer, privateKeyPem) => (err ? reject(err) : resolve({ privateKeyPem, publicKeyDer })),
    );
  });
}

/** A device's key pair of the given type (see DeviceKeyType). */
export function generateDeviceKeyPair(type: DeviceKeyType): Promise<GeneratedKeyPair> {
  return type === 'rsa' ? generateRsaKeyPair() : generateEcKeyPair();
}

/** Parses a private key (PKCS#8, PKCS#1 or SEC1 PEM); refuses encrypted or unreadable keys. */
export function parsePrivateKey(pem: string, what: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // No detail from OpenSSL on purpose: it could quote parts of the file.
    throw invalid('tls-key-unreadable', `${what}: not an unencrypted PEM private key`);
  }
}

/** Re-encodes any supported private key as PKCS#8 PEM, the one form the rest of Tresor handles. */
export function toPkcs8Pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export interface Signer {
  key: CryptoKey;
  /** Passed to @peculiar/x509 as signingAlgorithm. */
  algorithm: Algorithm | EcdsaParams;
}

/**
 * Imports a CA private key for certificate signing. RSA signs with PKCS#1 v1.5 + SHA-256
 * (what every TLS stack, dcmtk included, verifies); an operator's EC CA signs with ECDSA
 * and the hash matching its curve (RFC 5480 §4).
 */
export async function importSigner(privateKeyPem: string): Promise<Signer> {
  const key = parsePrivateKey(privateKeyPem, 'CA key');
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const subtle = webcrypto.subtle;
  if (key.asymmetricKeyType === 'rsa') {
    const params = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const cryptoKey = await subtle.importKey('pkcs8', pkcs8, params, false, ['sign']);
    return { key: cryptoKey as unknown as CryptoKey, algorithm: params };
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (named) {
      const cryptoKey = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: named }, false, ['sign']);
      const hash = named === 'P-256' ? 'SHA-256' : 'SHA-384';
      return { key: cryptoKey as unknown as CryptoKey, algorithm: { name: 'ECDSA', hash } };
    }
  }
  throw invalid('tls-key-unsupported', 'CA key must be RSA or EC P-256/P-384');
}

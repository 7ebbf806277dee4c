// Client certificates for DICOM devices. A device is bound to its certificate by the
// SHA-256 fingerprint of the DER (stored in the devices table); dimse/ compares it with
// tlsSocket.getPeerX509Certificate().raw. Tresor alone decides what a device certificate
// says: subject CN = AE title, clientAuth only, never a CA.
import { X509Certificate as NodeX509, createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { x509 } from './x509-lib.js';
import { invalid, unavailable } from '../core/errors.js';
import { canIssueDeviceCertificates, type Pki } from './ca.js';
import { signLeaf } from './issue.js';
import { generateDeviceKeyPair, type DeviceKeyType } from './keys.js';

const DEFAULT_DAYS = 365;
const MAX_DAYS = 3650;
/** Far above any real CSR (an RSA 8192 one is ~2 KiB); bounds the ASN.1 parser's work. */
const MAX_CSR_CHARS = 16 * 1024;
const MIN_RSA_BITS = 2048;
/** Upper bound so a CSR cannot make every later handshake pay for a huge key. */
const MAX_RSA_BITS = 8192;

export interface IssuedDeviceCertificate {
  certificatePem: string;
  /** PKCS#8 PEM; shown to the administrator once, never stored by Tresor. */
  privateKeyPem: string;
  /** Lowercase hex SHA-256 of the certificate DER, no colons. */
  fingerprint256: string;
}

export interface SignedDeviceCertificate {
  certificatePem: string;
  fingerprint256: string;
}

/** Generates a key pair for the device (ECDSA P-256 unless `keyType` says RSA, see keys.ts) and a client certificate for it. */
export async function issueDeviceCertificate(
  pki: Pki,
  opts: { aeTitle: string; days?: number; storageScp?: boolean; keyType?: DeviceKeyType },
): Promise<IssuedDeviceCertificate> {
  const ca = requireCa(pki);
  const aeTitle = validateAeTitle(opts.aeTitle);
  const days = validateDays(opts.days);
  const keyType = opts.keyType ?? 'ec';
  if (keyType !== 'ec' && keyType !== 'rsa') throw invalid('bad-key-type', 'the key type is "ec" (ECDSA P-256, the default) or "rsa" (RSA 3072, for older devices)');
  const keys = await generateDeviceKeyPair(keyType);
  const certificatePem = await signDeviceLeaf(ca, aeTitle, keys.publicKeyDer, keyType, days, opts.storageScp ?? false);
  return { certificatePem, privateKeyPem: keys.privateKeyPem, fingerprint256: fingerprint256(certificatePem) };
}

/**
 * Signs a device's CSR. Only the public key is taken from it, after its proof of
 * possession (the CSR signature) verifies: the requested subject and every requested
 * extension (basicConstraints CA:true, SANs, EKUs, …) are ignored, because a device
 * must not choose its identity or its powers.
 */
export async function signDeviceCsr(
  pki: Pki,
  opts: { aeTitle: string; csrPem: string; days?: number; storageScp?: boolean },
): Promise<SignedDeviceCertificate> {
  const ca = requireCa(pki);
  const aeTitle = validateAeTitle(opts.aeTitle);
  const days = validateDays(opts.days);
  const csr = parseCsr(opts.csrPem);
  const publicKey = acceptablePublicKey(csr);
  let verified: boolean;
  try {
    verified = await csr.verify();
  } catch {
    verified = false; // unknown or inconsistent signature algorithm
  }
  if (!verified) throw invalid('bad-csr', 'the CSR signature does not verify');
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const keyType = publicKey.asymmetricKeyType === 'rsa' ? 'rsa' : 'ec';
  const certificatePem = await signDeviceLeaf(ca, aeTitle, spki, keyType, days, opts.storageScp ?? false);
  return { certificatePem, fingerprint256: fingerprint256(certificatePem) };
}

/**
 * Lowercase hex SHA-256 of a certificate's DER, without colons: the form the database
 * stores. Accepts PEM (the first certificate of a bundle) or DER, e.g.
 * `fingerprint256(tlsSocket.getPeerX509Certificate().raw)`.
 */
export function fingerprint256(cert: string | Buffer): string {
  let der: Buffer;
  try {
    der = new NodeX509(cert).raw;
  } catch {
    throw invalid('bad-certificate', 'not a PEM or DER X.509 certificate');
  }
  return createHash('sha256').update(der).digest('hex');
}

// ----------------------------------------------------------------------------------

function signDeviceLeaf(
  ca: { caCertPem: string; caKeyPem: string },
  aeTitle: string,
  publicKeyDer: Buffer,
  keyType: 'rsa' | 'ec',
  days: number,
  storageScp: boolean,
): Promise<string> {
  // keyEncipherment only means something for RSA keys (RFC 5280 §4.2.1.3); an EC key
  // signs its handshake (ECDHE_ECDSA), it never decrypts.
  const keyUsages =
    keyType === 'rsa'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  return signLeaf(ca, {
    // An explicit UTF8String value: the AE title is never parsed as an RFC 4514 string,
    // so characters such as , + = " # in it need no escaping and cannot inject RDNs.
    subject: [{ CN: [{ utf8String: aeTitle }] }],
    publicKeyDer,
    days,
    keyUsages,
    // Client only, unless the device is a C-MOVE destination: then Tresor connects to
    // the device's storage SCP, which must present a server certificate (TLS clients,
    // Node's included, check serverAuth). Devices that are only clients never get
    // serverAuth, so they cannot pose as a server (Tresor) to other devices.
    extendedKeyUsages: storageScp ? [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth] : [x509.ExtendedKeyUsage.clientAuth],
  });
}

function requireCa(pki: Pki): { caCertPem: string; caKeyPem: string } {
  if (!canIssueDeviceCertificates(pki)) {
    throw unavailable('ca-key-unavailable', 'device certificates cannot be issued: Tresor runs with your own PKI and has no CA key; set TRESOR_TLS_CA_KEY to the private key of your CA (a 0600 file) and restart');
  }
  return { caCertPem: pki.caCertPem, caKeyPem: pki.caKeyPem };
}

/**
 * PS3.5 §6.2 (VR AE): at most 16 characters of the default repertoire, no backslash, no
 * control characters; leading and trailing spaces are not significant.
 */
function validateAeTitle(aeTitle: string): string {
  const t = aeTitle.trim();
  if (!/^[\x20-\x7e]{1,16}$/.test(t) || t.includes('\\')) {
    throw invalid('bad-ae-title', 'an AE title is 1-16 printable ASCII characters without backslash');
  }
  return t;
}

function validateDays(days: number | undefined): number {
  const d = days ?? DEFAULT_DAYS;
  if (!Number.isInteger(d) || d < 1 || d > MAX_DAYS) {
    throw invalid('bad-validity', `days must be an integer from 1 to ${MAX_DAYS}`);
  }
  return d;
}

const CSR_PEM = /^-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END (NEW )?CERTIFICATE REQUEST-----$/;

/** Exactly one PEM CSR; the library's own parser would also guess hex or bare base64. */
function parseCsr(csrPem: string): x509.Pkcs10CertificateRequest {
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_CHARS) throw invalid('bad-csr', 'not a PEM certificate request');
  const m = CSR_PEM.exec(csrPem.trim());
  if (!m) throw invalid('bad-csr', 'not a PEM certificate request');
  try {
    return new x509.Pkcs10CertificateRequest(Buffer.from(m[2], 'base64'));
  } catch {
    throw invalid('bad-csr', 'the certificate request cannot be parsed');
  }
}

/** RSA 2048-8192 or EC P-256/P-384: what dcmtk, OpenSSL and Node all handle in TLS 1.2 and 1.3. */
function acceptablePublicKey(csr: x509.Pkcs10CertificateRequest): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch {
    throw invalid('bad-csr', 'the CSR public key cannot be parsed');
  }
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa' && d?.modulusLength !== undefined) {
    if (d.modulusLength >= MIN_RSA_BITS && d.modulusLength <= MAX_RSA_BITS) return key;
  } else if (key.asymmetricKeyType === 'ec' && (d?.namedCurve === 'prime256v1' || d?.namedCurve === 'secp384r1')) {
    return key;
  }
  throw invalid('csr-key-unsupported', 'the CSR key must be RSA 2048-8192 bits or EC P-256/P-384');
}

// Signing of leaf certificates (Tresor's server certificate and device client
// certificates) by a CA. The caller decides subject, key usages and EKU; this module
// makes sure every leaf has the same hygiene: random serial, CA:false, SKI/AKI,
// validity clamped to the CA's.
import { X509Certificate as NodeX509, randomBytes } from 'node:crypto';
import { x509 } from './x509-lib.js';
import { importSigner } from './keys.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Backdating absorbs clock skew between Tresor and the devices that verify its certificates. */
const BACKDATE_MS = 5 * 60 * 1000;

/**
 * 16 random bytes with the top bit cleared (a DER INTEGER serial must be positive,
 * RFC 5280 §4.1.2.2) and the next bit set (no leading zero octet, so it stays 16 bytes).
 * 126 random bits, well above the 64 the CA/B Baseline Requirements ask for.
 */
export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return bytes.toString('hex');
}

/** Validity window of `days` from now, never outliving `notAfterCap` (a leaf must not outlive its CA). */
export function validity(days: number, notAfterCap?: Date): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  let notAfter = new Date(now + days * DAY_MS);
  if (notAfterCap && notAfterCap < notAfter) notAfter = notAfterCap;
  return { notBefore: new Date(now - BACKDATE_MS), notAfter };
}

export interface CaMaterial {
  caCertPem: string;
  caKeyPem: string;
}

export interface LeafRequest {
  /** Subject as a JSON name, so values are never parsed as RFC 4514 strings. */
  subject: x509.JsonNameParams;
  publicKeyDer: Buffer;
  days: number;
  keyUsages: x509.KeyUsageFlags;
  extendedKeyUsages: x509.ExtendedKeyUsage[];
  subjectAltNames?: x509.JsonGeneralNames;
}

/** Signs a leaf certificate with the CA and returns it as PEM. */
export async function signLeaf(ca: CaMaterial, req: LeafRequest): Promise<string> {
  const caCert = new x509.X509Certificate(ca.caCertPem);
  const spki = toArrayBuffer(req.publicKeyDer);
  const signer = await importSigner(ca.caKeyPem);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(req.keyUsages, true),
    new x509.ExtendedKeyUsageExtension(req.extendedKeyUsages, false),
    await x509.SubjectKeyIdentifierExtension.create(spki),
    await authorityKeyIdentifier(caCert),
  ];
  if (req.subjectAltNames) extensions.push(new x509.SubjectAlternativeNameExtension(req.subjectAltNames, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: new x509.Name(req.subject),
    // The issuer must be byte-identical to the CA's subject for path building.
    issuer: caCert.subjectName,
    ...validity(req.days, caCert.notAfter),
    publicKey: spki,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions,
  });
  return cert.toString('pem') + '\n';
}

/**
 * The AKI must equal the CA's own SKI (OpenSSL uses it to pick the issuer). An operator's
 * CA may have computed its SKI by another method than SHA-1 of the key, so copy it when
 * present and only derive it otherwise.
 */
async function authorityKeyIdentifier(caCert: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
  return x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false);
}

/** A plain ArrayBuffer copy: @peculiar/x509's BufferSource excludes Buffer's possibly shared backing store. */
export function toArrayBuffer(buf: Uint8Array): ArrayBuffer {
  return Uint8Array.from(buf).buffer;
}

/** True when `certPem` was signed by `caCertPem`'s key (signature only; no validity check). */
export function isIssuedBy(certPem: string, caCertPem: string): boolean {
  const cert = new NodeX509(certPem);
  const ca = new NodeX509(caCertPem);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

// Tresor's TLS material: either the operator's files (TRESOR_TLS_CERT/KEY/CA, loadPki) or
// a local CA and server certificate generated on first start under <dataDir>/tls/
// (ensureLocalPki). The CA key, when Tresor has it, also signs device client certificates.
//
// One Tresor process owns a data directory (the embedded database requires it too), so
// there is no cross-process lock here; crash safety comes from atomic writes and a fixed
// write order (see ensureLocalPki).
import { fsyncDir, writeFileAtomic } from '../lib/fs-atomic.js';
import { X509Certificate as NodeX509, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { x509 } from './x509-lib.js';
import { invalid } from '../core/errors.js';
import { generateEcKeyPair, generateRsaKeyPair, importSigner, parsePrivateKey, toPkcs8Pem } from './keys.js';
import { isIssuedBy, randomSerialHex, signLeaf, toArrayBuffer, validity } from './issue.js';

export interface Pki {
  /** What devices and clients trust, and what device client certificates are verified against. */
  caCertPem: string;
  /** PKCS#8 PEM; absent when the operator supplied a CA without its key: no device certificates then. */
  caKeyPem?: string;
  /** PEM; may hold a chain (leaf first) when the operator supplied one. */
  serverCertPem: string;
  /** PKCS#8 PEM. */
  serverKeyPem: string;
  /**
   * A second server pair with an ECDSA P-256 key, same CA and names, served beside the RSA
   * one (generated PKI only; see servedPairs).
   */
  serverEc?: ServerPair;
}

export interface ServerPair {
  certPem: string;
  keyPem: string;
}

/** File names under <dataDir>/tls/ (ARCHITECTURE.md, "Interfaces users and tests rely on"). */
export const TLS_FILES = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  serverEcCert: 'server-ec.crt',
  serverEcKey: 'server-ec.key',
} as const;

/**
 * What the HTTPS and DICOM listeners serve: the RSA pair, and the ECDSA pair when there is
 * one. OpenSSL picks per handshake: TLS 1.3 clients must verify ECDSA P-256 (RFC 8446
 * §9.1) and get it, so the server's handshake signature costs ~0.03 ms instead of ~2.6 ms
 * for RSA 3072 (issue 13: every association and HTTPS connection pays it); a TLS 1.2
 * client offering only ECDHE-RSA suites (dcmtk 3.6.7's BCP 195 profile) still gets the
 * RSA one. Tresor's own outgoing connections (C-MOVE) present the RSA pair only.
 */
export function servedPairs(pki: Pick<Pki, 'serverCertPem' | 'serverKeyPem' | 'serverEc'>): { keys: string[]; certs: string[] } {
  const pairs = [{ certPem: pki.serverCertPem, keyPem: pki.serverKeyPem }, ...(pki.serverEc ? [pki.serverEc] : [])];
  return { keys: pairs.map((p) => p.keyPem), certs: pairs.map((p) => p.certPem) };
}

/** The earliest end of validity of the served server certificates (what must be renewed first). */
export function serverNotAfter(pki: Pick<Pki, 'serverCertPem' | 'serverEc'>): Date {
  return new Date(Math.min(...servedPairs({ ...pki, serverKeyPem: '' }).certs.map((c) => new Date(new NodeX509(c).validTo).getTime())));
}

const CA_DAYS = 3650;
const SERVER_DAYS = 730;
/** Re-issue the generated server certificate when it has less than this left, so it never lapses in service. */
const SERVER_RENEW_BEFORE_DAYS = 30;
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;
const DIR_MODE = 0o700;

/** True when Tresor can issue device certificates with this PKI. */
export const canIssueDeviceCertificates = (pki: Pki): pki is Pki & { caKeyPem: string } =>
  typeof pki.caKeyPem === 'string';

/**
 * Loads the local PKI from `tlsDir`, generating what is missing. Writes happen in the
 * order ca.key, ca.crt, server.key, server.crt, server-ec.key, server-ec.crt, each
 * atomically, so after a crash:
 * - no ca.crt: nothing was ever trusted; a stray ca.key is replaced by a fresh CA;
 * - CA pair present, a server pair missing, mismatched or not from this CA: re-issue that
 *   server pair from the existing CA (devices keep trusting the same ca.crt).
 * The generated server certificate is also re-issued when it is about to expire or does
 * not cover a requested hostname. States that no crash can produce (ca.crt without its
 * key, ca.crt deleted under an existing server.crt) are refused rather than "repaired",
 * because regenerating would silently replace the trust anchor devices rely on.
 */
export async function ensureLocalPki(opts: { tlsDir: string; hostnames?: string[]; renewServer?: boolean }): Promise<Pki> {
  const hostnames = (opts.hostnames ?? []).map(validateHostname);
  const dir = opts.tlsDir;
  const file = (name: keyof typeof TLS_FILES) => path.join(dir, TLS_FILES[name]);
  await ensureDir(dir);

  let caCertPem = await readIfExists(file('caCert'));
  let caKeyPem = await readIfExists(file('caKey'));
  if (caCertPem === undefined) {
    if ((await readIfExists(file('serverCert'))) !== undefined) {
      throw invalid('tls-files-inconsistent', `${dir}: server.crt exists without ca.crt; restore ca.crt or move the directory away`);
    }
    ({ caCertPem, caKeyPem } = await createCa());
    await writeFileAtomic(file('caKey'), caKeyPem, KEY_MODE);
    await writeFileAtomic(file('caCert'), caCertPem, CERT_MODE);
  } else if (caKeyPem === undefined) {
    throw invalid('tls-files-inconsistent', `${dir}: ca.crt exists without ca.key; restore ca.key or move the directory away`);
  }
  assertKeyMatches(caCertPem, caKeyPem, 'ca');

  // The RSA pair, then the ECDSA one (an installation from before the ECDSA pair gets it
  // on its next start); each reused when usable, else issued from the CA and written key first.
  const ca = { caCertPem, caKeyPem };
  const pair = async (certFile: string, keyFile: string, keyType: ServerKeyType): Promise<ServerPair> => {
    const certPem = await readIfExists(certFile);
    const keyPem = await readIfExists(keyFile);
    // `renewServer` (`tresor tls renew`): new server pairs from the same CA, whatever the old ones.
    if (!opts.renewServer && certPem !== undefined && keyPem !== undefined && serverPairUsable(certPem, keyPem, caCertPem, hostnames)) return { certPem, keyPem };
    const fresh = await createServerCertificate(ca, hostnames, true, keyType);
    await writeFileAtomic(keyFile, fresh.keyPem, KEY_MODE);
    await writeFileAtomic(certFile, fresh.certPem, CERT_MODE);
    await fsyncDir(dir);
    return fresh;
  };
  const rsa = await pair(file('serverCert'), file('serverKey'), 'rsa');
  const serverEc = await pair(file('serverEcCert'), file('serverEcKey'), 'ec');
  return { caCertPem, caKeyPem, serverCertPem: rsa.certPem, serverKeyPem: rsa.keyPem, serverEc };
}

/**
 * Loads operator-provided files. Without `ca`, the trust anchor is taken from the
 * certificate file when it is self-signed or ends its chain with a self-signed root;
 * otherwise client certificates could not be verified and loading fails. `caKey` is
 * optional: without it Tresor serves TLS but cannot issue device certificates.
 * Keys are normalised to PKCS#8.
 */
export async function loadPki(paths: { cert: string; key: string; ca?: string; caKey?: string }): Promise<Pki> {
  const serverCertPem = await readRequired(paths.cert);
  const serverKeyPem = toPkcs8Pem(parsePrivateKey(await readRequired(paths.key), 'TLS key'));
  assertKeyMatches(serverCertPem, serverKeyPem, 'server');
  const caCertPem = paths.ca !== undefined ? await readRequired(paths.ca) : selfSignedRoot(serverCertPem);
  if (caCertPem === undefined) {
    throw invalid('tls-ca-missing', 'the TLS certificate is not self-signed and carries no root: give the CA certificate (TRESOR_TLS_CA)');
  }
  parseCertificate(caCertPem, 'CA certificate');
  let caKeyPem: string | undefined;
  if (paths.caKey !== undefined) {
    caKeyPem = toPkcs8Pem(parsePrivateKey(await readRequired(paths.caKey), 'CA key'));
    assertKeyMatches(caCertPem, caKeyPem, 'ca');
    await importSigner(caKeyPem); // fail at startup, not at the first device enrolment
  }
  return { caCertPem, caKeyPem, serverCertPem, serverKeyPem };
}

// --- generation -------------------------------------------------------------------

export async function createCa(): Promise<{ caCertPem: string; caKeyPem: string }> {
  const keys = await generateRsaKeyPair();
  const signer = await importSigner(keys.privateKeyPem);
  // A random id in the name lets operators tell two installations' CAs apart in a trust store.
  const name = new x509.Name([{ CN: [{ utf8String: `Tresor local CA ${randomBytes(4).toString('hex')}` }] }]);
  const spki = toArrayBuffer(keys.publicKeyDer);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: name,
    issuer: name,
    ...validity(CA_DAYS),
    publicKey: spki,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      // pathLength 0: this CA only ever signs leaves, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(spki),
    ],
  });
  return { caCertPem: cert.toString('pem') + '\n', caKeyPem: keys.privateKeyPem };
}

export type ServerKeyType = 'rsa' | 'ec';

/**
 * A server pair from the CA. `ownHostname` (default true) adds this machine's name; the
 * shared certificate of several nodes (pki/db-pki.ts) names only TRESOR_TLS_HOSTNAMES,
 * the same on every node, so no node sees it as "not covering my name" and re-issues it.
 */
export async function createServerCertificate(ca: { caCertPem: string; caKeyPem: string }, hostnames: string[], ownHostname = true, keyType: ServerKeyType = 'rsa'): Promise<ServerPair> {
  const keys = keyType === 'ec' ? await generateEcKeyPair() : await generateRsaKeyPair();
  const certPem = await signLeaf(ca, {
    subject: [{ CN: [{ utf8String: 'Tresor server' }] }],
    publicKeyDer: keys.publicKeyDer,
    days: SERVER_DAYS,
    // keyEncipherment only for RSA (RFC 5280 §4.2.1.3): an EC key only signs.
    keyUsages: keyType === 'ec' ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    // clientAuth too: Tresor presents this certificate when it connects to C-MOVE destinations.
    extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    subjectAltNames: serverSubjectAltNames(hostnames, ownHostname),
  });
  return { certPem, keyPem: keys.privateKeyPem };
}

function serverSubjectAltNames(hostnames: string[], ownHostname: boolean): x509.JsonGeneralNames {
  const names = ['localhost', '127.0.0.1', '::1'];
  const own = os.hostname().toLowerCase();
  if (ownHostname && isDnsName(own)) names.push(own);
  names.push(...hostnames);
  const unique = [...new Set(names.map((n) => n.toLowerCase()))];
  return unique.map((value) => ({ type: isIP(value) ? 'ip' : 'dns', value }));
}

/** Reuse the existing server pair only if it is whole, ours, fresh and covers the requested names. */
export function serverPairUsable(certPem: string, keyPem: string, caCertPem: string, hostnames: string[]): boolean {
  let cert: NodeX509;
  try {
    cert = new NodeX509(certPem);
    if (!cert.checkPrivateKey(parsePrivateKey(keyPem, 'server key'))) return false;
    if (!isIssuedBy(certPem, caCertPem)) return false;
  } catch {
    return false; // half-written by an older tool or truncated: re-issue from our CA
  }
  const renewAt = Date.now() + SERVER_RENEW_BEFORE_DAYS * 24 * 60 * 60 * 1000;
  if (new Date(cert.validTo).getTime() < renewAt) return false;
  return hostnames.every((h) => (isIP(h) ? cert.checkIP(h) : cert.checkHost(h)) !== undefined);
}

// --- validation -------------------------------------------------------------------

function isDnsName(name: string): boolean {
  // RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
  return name.length <= 253 && /^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/i.test(name);
}

export function validateHostname(name: string): string {
  const n = name.trim().toLowerCase();
  if (isIP(n) || isDnsName(n)) return n;
  throw invalid('bad-hostname', `not a host name or IP address: ${JSON.stringify(name)}`);
}

function parseCertificate(pem: string, what: string): NodeX509 {
  try {
    return new NodeX509(pem);
  } catch {
    throw invalid('tls-cert-unreadable', `${what}: not a PEM certificate`);
  }
}

export function assertKeyMatches(certPem: string, keyPem: string, what: 'ca' | 'server'): void {
  const cert = parseCertificate(certPem, `${what} certificate`);
  if (!cert.checkPrivateKey(parsePrivateKey(keyPem, `${what} key`))) {
    throw invalid('tls-key-mismatch', `the ${what} key does not belong to the ${what} certificate`);
  }
}

/** The last certificate of a PEM bundle when it is self-signed (the chain's root), else undefined. */
function selfSignedRoot(bundlePem: string): string | undefined {
  const blocks = bundlePem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const last = blocks.at(-1);
  if (last === undefined) return undefined;
  const cert = parseCertificate(last, 'TLS certificate');
  return cert.checkIssued(cert) && cert.verify(cert.publicKey) ? last + '\n' : undefined;
}

// --- files ------------------------------------------------------------------------

async function ensureDir(dir: string): Promise<void> {
  await mkdir(path.dirname(dir), { recursive: true });
  try {
    await mkdir(dir, { mode: DIR_MODE });
    await chmod(dir, DIR_MODE); // mode at mkdir is filtered by the umask; be explicit
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function readRequired(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    throw invalid('tls-file-unreadable', `cannot read ${file}`);
  }
}

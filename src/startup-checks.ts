// Checks `tresor serve` makes before it listens (issue 14, items 5, 7, 8): an insecure
// configuration refuses to start with one clear message each, rather than running
// half-protected.
//  - TLS material: the server (and CA) certificate must be within its validity period;
//    RSA keys must have at least 2048 bits — BCP 195 (RFC 9325 §4.1: RSA keys below 2048
//    bits MUST NOT be used) and NIST SP 800-131A rev. 2 (112-bit security, disallowing
//    1024-bit RSA since 2013); EC keys at least 256 bits (the same 112-bit floor, BCP 195
//    §4.1); a server certificate expiring within 30 days is a warning.
//  - Private-key files must not be readable or writable by group or others (mode & 077):
//    refused, with the chmod to run, because a key that others could read must be treated
//    as disclosed — fixing the mode silently would hide that.
//  - The data directory is ours alone: the process umask is 077 (so PGlite, which creates
//    its files 0666/0755, makes them 0600/0700), and at start every group/other bit under
//    the data directory is removed (fixed, and the count logged: these are files Tresor
//    itself made, and the data directory is 0700 already).
//  - `<data>/tmp` is emptied: nothing is in flight before the server listens, so whatever
//    is there was left by a crash (spooled uploads, C-STORE parts).

import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { invalid } from './core/errors.js';

export const MIN_RSA_BITS = 2048;
export const MIN_EC_BITS = 256;
export const EXPIRY_WARNING_DAYS = 30;

export interface TlsMaterial {
  serverCertPem: string;
  serverKeyPem: string;
  caCertPem: string;
  /** The ECDSA pair served beside the RSA one (pki/ca.ts servedPairs): checked the same way. */
  serverEc?: { certPem: string; keyPem: string };
}

/** Refuses expired (or not yet valid) certificates and weak keys; returns warnings (expiry within 30 days). */
export function checkTlsMaterial(pki: TlsMaterial, now: Date = new Date()): string[] {
  const warnings = checkServerPair(pki.serverCertPem, pki.serverKeyPem, 'server certificate', now);
  if (pki.serverEc) warnings.push(...checkServerPair(pki.serverEc.certPem, pki.serverEc.keyPem, 'ECDSA server certificate', now));
  checkValidity(new X509Certificate(pki.caCertPem), 'CA certificate', now);
  return warnings;
}

function checkValidity(cert: X509Certificate, what: string, now: Date): void {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (to < now) throw invalid('tls-cert-expired', `the TLS ${what} expired on ${to.toISOString()}: renew it (tresor tls renew, or a new TRESOR_TLS_CERT) and start again`);
  if (from > now) throw invalid('tls-cert-expired', `the TLS ${what} is not valid before ${from.toISOString()}: check the system clock or the certificate`);
}

function checkServerPair(certPem: string, keyPem: string, what: string, now: Date): string[] {
  const warnings: string[] = [];
  const server = new X509Certificate(certPem);
  checkValidity(server, what, now);
  checkKeyStrength(`TLS ${what.replace('certificate', 'key')}`, createPrivateKey(keyPem));
  checkKeyStrength(`TLS ${what} key`, server.publicKey);
  const left = (new Date(server.validTo).getTime() - now.getTime()) / 86_400_000;
  if (left < EXPIRY_WARNING_DAYS) warnings.push(`the TLS ${what} expires in ${Math.floor(left)} day(s) (${new Date(server.validTo).toISOString()}): renew it soon (tresor tls renew)`);
  return warnings;
}

function checkKeyStrength(what: string, key: ReturnType<typeof createPrivateKey>): void {
  const d = key.asymmetricKeyDetails ?? {};
  if ((key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') && (d.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw invalid('tls-key-too-weak', `the ${what} is RSA with ${d.modulusLength} bits; at least ${MIN_RSA_BITS} are required (BCP 195 / RFC 9325 §4.1, NIST SP 800-131A): issue a new key`);
  }
  if (key.asymmetricKeyType === 'ec') {
    const bits = { prime256v1: 256, secp384r1: 384, secp521r1: 521 }[d.namedCurve ?? ''] ?? 0;
    if (bits < MIN_EC_BITS) throw invalid('tls-key-too-weak', `the ${what} uses curve ${d.namedCurve ?? 'unknown'}; P-256 or stronger is required (BCP 195 / RFC 9325 §4.1): issue a new key`);
  }
}

/** A private-key file readable or writable by group or others is refused. */
export async function checkKeyFileMode(file: string): Promise<void> {
  const st = await fs.stat(file);
  if ((st.mode & 0o077) !== 0) {
    throw invalid('tls-key-permissions', `${file} is accessible to group or others (mode ${(st.mode & 0o777).toString(8)}): treat the key as disclosed if others could log in, then run chmod 600 ${file} and start again`);
  }
}

/**
 * Removes group/other permission bits under `dir` (not following symbolic links); returns
 * how many entries were fixed. Directories named in `notInside` are fixed themselves but
 * not walked (the filesystem blob store: millions of files, written by us 0600 inside a
 * 0700 tree).
 */
export async function tightenModes(dir: string, notInside: readonly string[] = []): Promise<number> {
  let fixed = 0;
  const skip = new Set(notInside.map((d) => path.resolve(d)));
  const visit = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    if (st.isSymbolicLink()) return;
    if ((st.mode & 0o077) !== 0) {
      await fs.chmod(p, st.mode & 0o700);
      fixed++;
    }
    if (st.isDirectory() && !skip.has(path.resolve(p))) for (const e of await fs.readdir(p)) await visit(path.join(p, e));
  };
  await visit(dir);
  return fixed;
}

/** Empties `<data>/tmp` (kept, mode 0700); returns how many entries were removed. */
export async function cleanTempDir(tmpDir: string): Promise<number> {
  await fs.mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const entries = await fs.readdir(tmpDir);
  for (const e of entries) await fs.rm(path.join(tmpDir, e), { recursive: true, force: true });
  return entries.length;
}

// One local PKI (CA + server certificate, pki/ca.ts) per test process: RSA 3072
// generation is slow, and every server a test file starts may share the same CA
// (the clients trust only it).

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureLocalPki, TLS_FILES, type Pki } from '../../src/pki/ca.js';
import { run } from './dimse-tools.js';

export interface TestPki {
  pki: Pki;
  /** The directory holding tls/ (ca.crt, server.crt, ...). */
  dir: string;
  /** The CA certificate file, for dcmtk's --add-cert-file and openssl -CA. */
  caPath: string;
}

let shared: Promise<TestPki> | undefined;

/** The process's test PKI, made on first use (hostnames localhost and 127.0.0.1). */
export function sharedTestPki(): Promise<TestPki> {
  shared ??= (async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-test-pki-'));
    const pki = await ensureLocalPki({ tlsDir: path.join(dir, 'tls'), hostnames: ['localhost'] });
    return { pki, dir, caPath: path.join(dir, 'tls', TLS_FILES.caCert) };
  })();
  return shared;
}

/** Just the Pki of sharedTestPki(). */
export async function testPki(): Promise<Pki> {
  return (await sharedTestPki()).pki;
}

/**
 * A certificate made with the openssl CLI (an independent tool, not pki/ca.ts), signed
 * by `ca` or, without one, by a fresh self-signed CA "Other CA" (one Tresor does not
 * trust). Files: <base>.key, <base>.crt.
 */
export async function opensslCertificate(o: {
  base: string;
  cn: string;
  /** openssl x509 -extfile content (key usage, EKU, SAN). */
  extensions: string;
  ca?: { certPath: string; keyPem: string };
}): Promise<{ keyPath: string; certPath: string }> {
  const { base: b } = o;
  await fs.writeFile(`${b}.ext`, o.extensions);
  const steps: string[][] = [];
  let caCert: string;
  const caKey = `${b}-ca.key`;
  if (o.ca) {
    caCert = o.ca.certPath;
    await fs.writeFile(caKey, o.ca.keyPem, { mode: 0o600 });
  } else {
    caCert = `${b}-ca.crt`;
    steps.push(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caCert, '-subj', '/CN=Other CA', '-days', '2']);
  }
  steps.push(
    ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${b}.key`, '-out', `${b}.csr`, '-subj', `/CN=${o.cn}`],
    ['x509', '-req', '-in', `${b}.csr`, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-CAserial', `${b}.srl`, '-days', '2', '-sha256', '-extfile', `${b}.ext`, '-out', `${b}.crt`],
  );
  try {
    for (const a of steps) {
      const r = await run('openssl', a);
      if (r.code !== 0) throw new Error(`openssl ${a[0]} failed: ${r.stderr}`);
    }
  } finally {
    // Tresor's CA key never stays on disk longer than the signing.
    if (o.ca) await fs.rm(caKey, { force: true });
  }
  return { keyPath: `${b}.key`, certPath: `${b}.crt` };
}

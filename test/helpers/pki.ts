// One local PKI (CA + server certificate, pki/ca.ts) per test process: RSA 3072
// generation is slow, and every server a test file starts may share the same CA
// (the clients trust only it).

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureLocalPki, TLS_FILES, type Pki } from '../../src/pki/ca.js';

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

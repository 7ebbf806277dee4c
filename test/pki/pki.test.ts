// The local PKI, checked with independent tools: Node's X509Certificate, the openssl CLI,
// a real node:tls handshake and (when installed) dcmtk's echoscu as a TLS client.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canIssueDeviceCertificates, ensureLocalPki, loadPki, type Pki } from '../../src/pki/ca.js';
import { x509 } from '../../src/pki/x509-lib.js';
import { isIssuedBy } from '../../src/pki/issue.js';
import { fingerprint256, issueDeviceCertificate, signDeviceCsr, type IssuedDeviceCertificate } from '../../src/pki/device-cert.js';

const DAY = 24 * 60 * 60 * 1000;
let tmp: string;
let tlsDir: string;
let pki: Pki;
let device: IssuedDeviceCertificate;
/** Files for the openssl CLI. */
let f: Record<'ca' | 'server' | 'device' | 'deviceKey', string>;

function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}
function opensslStatus(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}
const text = (certFile: string) => openssl(['x509', '-noout', '-text', '-in', certFile]);
const cnOf = (pem: string) => new x509.X509Certificate(pem).subjectName.getField('CN');

async function put(name: string, data: string): Promise<string> {
  const file = path.join(tmp, name);
  await writeFile(file, data);
  return file;
}

/** An openssl-made CSR: key PEM and CSR PEM. */
function makeCsr(newkey: string[], extra: string[] = []): { keyPem: string; csrPem: string } {
  const keyFile = path.join(tmp, `csr-${Math.random().toString(36).slice(2)}.key`);
  const csrPem = openssl(['req', '-new', ...newkey, '-nodes', '-keyout', keyFile, '-subj', '/CN=evil', ...extra]);
  return { keyPem: readFileSync(keyFile, 'utf8'), csrPem };
}

const pemToDer = (pem: string) => Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
const derToPem = (der: Buffer, label: string) =>
  `-----BEGIN ${label}-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'tresor-pki-'));
  tlsDir = path.join(tmp, 'data', 'tls');
  // RSA 3072 generation takes a while: one CA, one server and one device key for the suite.
  pki = await ensureLocalPki({ tlsDir, hostnames: ['pacs.example.org', '10.1.2.3'] });
  device = await issueDeviceCertificate(pki, { aeTitle: 'MODALITY1' });
  f = {
    ca: path.join(tlsDir, 'ca.crt'),
    server: path.join(tlsDir, 'server.crt'),
    device: await put('device.crt', device.certificatePem),
    deviceKey: await put('device.key', device.privateKeyPem),
  };
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('ensureLocalPki', () => {
  it('writes exactly six files: keys 0600 (PKCS#8), certificates 0644, directory 0700', async () => {
    expect((await readdir(tlsDir)).sort()).toEqual(['ca.crt', 'ca.key', 'server-ec.crt', 'server-ec.key', 'server.crt', 'server.key']);
    const mode = async (name: string) => (await stat(path.join(tlsDir, name))).mode & 0o777;
    expect(await mode('ca.key')).toBe(0o600);
    expect(await mode('server.key')).toBe(0o600);
    expect(await mode('server-ec.key')).toBe(0o600);
    expect(await mode('ca.crt')).toBe(0o644);
    expect(await mode('server.crt')).toBe(0o644);
    expect(await mode('server-ec.crt')).toBe(0o644);
    expect((await stat(tlsDir)).mode & 0o777).toBe(0o700);
    for (const key of ['ca.key', 'server.key', 'server-ec.key']) {
      expect(await readFile(path.join(tlsDir, key), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    }
    expect(await readFile(f.ca, 'utf8')).toBe(pki.caCertPem);
  });

  it('makes an RSA 3072 CA: CA:TRUE critical, keyCertSign + cRLSign, 10 years, random CN', () => {
    const ca = new X509Certificate(pki.caCertPem);
    expect(ca.ca).toBe(true);
    expect(ca.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(ca.subject).toMatch(/^CN=Tresor local CA [0-9a-f]{8}$/);
    expect(ca.issuer).toBe(ca.subject);
    const t = text(f.ca);
    expect(t).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
    expect(t).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(t).toContain('Signature Algorithm: sha256WithRSAEncryption');
    const years = (Date.parse(ca.validTo) - Date.now()) / (365 * DAY);
    expect(years).toBeGreaterThan(9.9);
    expect(years).toBeLessThan(10.1);
  });

  it('makes an ECDSA P-256 server certificate beside it: same names, same EKUs, digitalSignature only', async () => {
    const ecFile = path.join(tlsDir, 'server-ec.crt');
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', f.ca, ecFile])).toContain('OK');
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', f.ca, ecFile])).toContain('OK');
    const t = text(ecFile);
    expect(t).toContain('ASN1 OID: prime256v1');
    expect(t).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(new X509Certificate(pki.serverEc!.certPem).subjectAltName).toBe(new X509Certificate(pki.serverCertPem).subjectAltName);
    expect(new X509Certificate(pki.serverEc!.certPem).checkPrivateKey(createPrivateKey(pki.serverEc!.keyPem))).toBe(true);
    expect(await readFile(path.join(tlsDir, 'server-ec.key'), 'utf8')).toBe(pki.serverEc!.keyPem);
  });

  it('makes a 2-year RSA 3072 server certificate that verifies against the CA, with SANs and both EKUs', () => {
    expect(openssl(['verify', '-CAfile', f.ca, f.server]).trim()).toBe(`${f.server}: OK`);
    // Tresor's server certificate is also its client certificate (C-MOVE to other devices).
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', f.ca, f.server])).toContain('OK');
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', f.ca, f.server])).toContain('OK');
    const t = text(f.server);
    expect(t).toContain('Public-Key: (3072 bit)');
    expect(t).toMatch(/Extended Key Usage: \s+TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(t).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    for (const san of ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1', 'DNS:pacs.example.org', 'IP Address:10.1.2.3']) {
      expect(t).toContain(san);
    }
    const server = new X509Certificate(pki.serverCertPem);
    expect(server.checkHost(os.hostname())).toBeDefined();
    expect(server.checkIP('::1')).toBeDefined();
    // 16-byte positive serial: 32 hex digits, top bit clear.
    expect(server.serialNumber).toMatch(/^[0-7][0-9A-F]{31}$/);
    const years = (Date.parse(server.validTo) - Date.now()) / (365 * DAY);
    expect(years).toBeGreaterThan(1.9);
    expect(years).toBeLessThan(2.1);
  });

  it('reuses the files on a later start', async () => {
    const again = await ensureLocalPki({ tlsDir, hostnames: ['pacs.example.org', '10.1.2.3'] });
    expect(again).toEqual(pki);
    expect(fingerprint256(again.caCertPem)).toBe(fingerprint256(pki.caCertPem));
    expect(fingerprint256(again.serverCertPem)).toBe(fingerprint256(pki.serverCertPem));
  });

  it('re-issues only the server certificate when it is missing or lacks a requested host name', async () => {
    const dir = path.join(tmp, 'recover', 'tls');
    await mkdir(path.dirname(dir), { recursive: true });
    await cp(tlsDir, dir, { recursive: true });
    await rm(path.join(dir, 'server.crt')); // as after a crash between server.key and server.crt
    const recovered = await ensureLocalPki({ tlsDir: dir });
    expect(recovered.caCertPem).toBe(pki.caCertPem);
    expect(recovered.caKeyPem).toBe(pki.caKeyPem);
    expect(fingerprint256(recovered.serverCertPem)).not.toBe(fingerprint256(pki.serverCertPem));
    expect(openssl(['verify', '-CAfile', f.ca, path.join(dir, 'server.crt')])).toContain('OK');

    const widened = await ensureLocalPki({ tlsDir: dir, hostnames: ['new.example.org'] });
    expect(widened.caCertPem).toBe(pki.caCertPem);
    expect(new X509Certificate(widened.serverCertPem).checkHost('new.example.org')).toBe('new.example.org');
    expect((await readdir(dir)).sort()).toEqual(['ca.crt', 'ca.key', 'server-ec.crt', 'server-ec.key', 'server.crt', 'server.key']);

    // An installation from before the ECDSA pair gets one from the same CA; the RSA pair stays.
    await rm(path.join(dir, 'server-ec.crt'));
    await rm(path.join(dir, 'server-ec.key'));
    const upgraded = await ensureLocalPki({ tlsDir: dir, hostnames: ['new.example.org'] });
    expect(upgraded.serverCertPem).toBe(widened.serverCertPem);
    expect(upgraded.serverEc!.certPem).not.toBe(widened.serverEc!.certPem);
    expect(isIssuedBy(upgraded.serverEc!.certPem, pki.caCertPem)).toBe(true);
  });

  it('refuses to replace a CA whose key is gone, and rejects bad host names', async () => {
    const dir = path.join(tmp, 'nokey');
    await mkdir(dir, { mode: 0o700 });
    await writeFile(path.join(dir, 'ca.crt'), pki.caCertPem);
    await expect(ensureLocalPki({ tlsDir: dir })).rejects.toMatchObject({ kind: 'invalid', reason: 'tls-files-inconsistent' });
    expect(await readdir(dir)).toEqual(['ca.crt']);
    await expect(ensureLocalPki({ tlsDir: dir, hostnames: ['bad host/name'] })).rejects.toMatchObject({ reason: 'bad-hostname' });
  });
});

describe('issueDeviceCertificate', () => {
  it('issues a client-only, non-CA certificate with CN = AE title that verifies against the CA', () => {
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', f.ca, f.device])).toContain('OK');
    expect(opensslStatus(['verify', '-purpose', 'sslserver', '-CAfile', f.ca, f.device]).status).not.toBe(0);
    const cert = new X509Certificate(device.certificatePem);
    expect(cert.ca).toBe(false);
    expect(cnOf(device.certificatePem)).toEqual(['MODALITY1']);
    expect(cert.subject).toBe('CN=MODALITY1');
    const t = text(f.device);
    // ECDSA P-256 by default (pki/keys.ts DeviceKeyType): no keyEncipherment for an EC key (RFC 5280 §4.2.1.3).
    expect(t).toContain('Public-Key: (256 bit)');
    expect(t).toContain('ASN1 OID: prime256v1');
    expect(t).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(t).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(t).toMatch(/Extended Key Usage: \s+TLS Web Client Authentication\n/);
    expect(t).not.toContain('Server Authentication');
    // AKI = the CA's SKI, so OpenSSL and dcmtk find the issuer by key id.
    const caSki = /Subject Key Identifier: \s+([0-9A-F:]+)/.exec(text(f.ca))![1];
    expect(t).toMatch(new RegExp(`Authority Key Identifier: \\s+(keyid:)?${caSki}`));
    expect(t).toContain('X509v3 Subject Key Identifier');
    const days = (Date.parse(cert.validTo) - Date.now()) / DAY;
    expect(days).toBeGreaterThan(364);
    expect(days).toBeLessThan(366);
    expect(device.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(cert.checkPrivateKey(createPrivateKey(device.privateKeyPem))).toBe(true);
  });

  it('generates an RSA 3072 key instead when asked (older devices), and refuses other key types', async () => {
    const rsa = await issueDeviceCertificate(pki, { aeTitle: 'OLDCT', keyType: 'rsa' });
    const key = createPrivateKey(rsa.privateKeyPem);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(3072);
    const t = text(await put('old-ct.crt', rsa.certificatePem));
    expect(t).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
    expect(new X509Certificate(rsa.certificatePem).checkPrivateKey(key)).toBe(true);
    await expect(issueDeviceCertificate(pki, { aeTitle: 'OK', keyType: 'dsa' as never })).rejects.toMatchObject({ kind: 'invalid', reason: 'bad-key-type' });
  });

  it('refuses bad AE titles and validity before doing any work', async () => {
    for (const aeTitle of ['', '   ', 'SEVENTEEN_CHARS_X', 'A\\B', 'TAB\tX', 'ÄRZTE']) {
      await expect(issueDeviceCertificate(pki, { aeTitle })).rejects.toMatchObject({ kind: 'invalid', reason: 'bad-ae-title' });
    }
    await expect(issueDeviceCertificate(pki, { aeTitle: 'OK', days: 0 })).rejects.toMatchObject({ reason: 'bad-validity' });
    await expect(issueDeviceCertificate(pki, { aeTitle: 'OK', days: 1.5 })).rejects.toMatchObject({ reason: 'bad-validity' });
  });
});

describe('device certificates for C-MOVE destinations', () => {
  it('are client-only by default and client+server for a storage SCP', async () => {
    const SERVER = '1.3.6.1.5.5.7.3.1';
    const CLIENT = '1.3.6.1.5.5.7.3.2';
    expect(new X509Certificate(device.certificatePem).keyUsage).toEqual([CLIENT]);
    const dest = await issueDeviceCertificate(pki, { aeTitle: 'WORKSTATION1', storageScp: true });
    expect([...new X509Certificate(dest.certificatePem).keyUsage].sort()).toEqual([SERVER, CLIENT].sort());
  });
});

describe('signDeviceCsr', () => {
  it('ignores the requested subject and every requested extension (CA:TRUE, SAN, serverAuth)', async () => {
    const { csrPem } = makeCsr(['-newkey', 'rsa:2048'], [
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'subjectAltName=DNS:evil.example',
      '-addext', 'extendedKeyUsage=serverAuth',
    ]);
    const signed = await signDeviceCsr(pki, { aeTitle: 'CT_SCANNER', csrPem, days: 30 });
    const file = await put('csr-signed.crt', signed.certificatePem);
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', f.ca, file])).toContain('OK');
    const cert = new X509Certificate(signed.certificatePem);
    expect(cert.ca).toBe(false);
    expect(cnOf(signed.certificatePem)).toEqual(['CT_SCANNER']);
    expect(cert.subjectAltName).toBeUndefined();
    const t = text(file);
    expect(t).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(t).not.toContain('CA:TRUE');
    expect(t).not.toContain('evil');
    expect(t).toMatch(/Extended Key Usage: \s+TLS Web Client Authentication\n/);
    // The certified key is the CSR's key.
    const csrKey = openssl(['req', '-noout', '-pubkey'], csrPem);
    expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(csrKey);
    expect(signed.fingerprint256).toBe(fingerprint256(signed.certificatePem));
    const days = (Date.parse(cert.validTo) - Date.now()) / DAY;
    expect(Math.round(days)).toBe(30);
  });

  it('puts AE titles with DN metacharacters into one CN, verbatim', async () => {
    const { csrPem } = makeCsr(['-newkey', 'rsa:2048']);
    // '#41' would become the raw DER of "A" if the title were parsed as an RFC 4514 value.
    for (const aeTitle of ['A,B=C+"#<>;x', '#41', ' CN=ROOT ']) {
      const signed = await signDeviceCsr(pki, { aeTitle, csrPem });
      expect(new x509.X509Certificate(signed.certificatePem).subjectName.toJSON()).toEqual([{ CN: [aeTitle.trim()] }]);
    }
    const signed = await signDeviceCsr(pki, { aeTitle: 'A,B=C+"#<>;x', csrPem });
    const subject = openssl(['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], signed.certificatePem);
    expect(subject.trim()).toBe('subject=CN=A\\,B=C\\+\\"#\\<\\>\\;x');
  });

  it('accepts EC P-256 (digitalSignature only) and refuses weak or unsupported keys', async () => {
    const ec = makeCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
    const signed = await signDeviceCsr(pki, { aeTitle: 'US_CART', csrPem: ec.csrPem });
    const t = openssl(['x509', '-noout', '-text'], signed.certificatePem);
    expect(t).toContain('id-ecPublicKey');
    expect(t).toMatch(/Key Usage: critical\s+Digital Signature\n/);

    const p521 = makeCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521']);
    await expect(signDeviceCsr(pki, { aeTitle: 'X', csrPem: p521.csrPem })).rejects.toMatchObject({ reason: 'csr-key-unsupported' });
    const rsa1024 = makeCsr(['-newkey', 'rsa:1024']);
    await expect(signDeviceCsr(pki, { aeTitle: 'X', csrPem: rsa1024.csrPem })).rejects.toMatchObject({ reason: 'csr-key-unsupported' });
    const ed = makeCsr(['-newkey', 'ed25519']);
    await expect(signDeviceCsr(pki, { aeTitle: 'X', csrPem: ed.csrPem })).rejects.toMatchObject({ reason: 'csr-key-unsupported' });
  });

  it('refuses garbage as bad-csr', async () => {
    const garbage = [
      '',
      'hello',
      '308201',
      derToPem(Buffer.from('not asn.1 at all'), 'CERTIFICATE REQUEST'),
      pki.serverCertPem,
      derToPem(pemToDer(pki.serverCertPem), 'CERTIFICATE REQUEST'),
      'x'.repeat(100_000),
    ];
    for (const csrPem of garbage) {
      await expect(signDeviceCsr(pki, { aeTitle: 'X', csrPem })).rejects.toMatchObject({ kind: 'invalid', reason: 'bad-csr' });
    }
  });

  it('refuses a CSR whose signature does not verify', async () => {
    const { csrPem } = makeCsr(['-newkey', 'rsa:2048']);
    const der = pemToDer(csrPem);
    // Subject changed after signing ("evil" → "evim"): still well-formed, signature wrong.
    const tampered = Buffer.from(der);
    const at = tampered.indexOf('evil');
    expect(at).toBeGreaterThan(0);
    tampered[at + 3] = 'm'.charCodeAt(0);
    // Signature bits flipped.
    const flipped = Buffer.from(der);
    flipped[flipped.length - 1] ^= 0xff;
    for (const bad of [tampered, flipped]) {
      await expect(signDeviceCsr(pki, { aeTitle: 'X', csrPem: derToPem(bad, 'CERTIFICATE REQUEST') })).rejects.toMatchObject({
        kind: 'invalid',
        reason: 'bad-csr',
      });
    }
    // The untampered CSR is fine.
    await expect(signDeviceCsr(pki, { aeTitle: 'X', csrPem })).resolves.toBeDefined();
  });
});

describe('fingerprint256', () => {
  it('is the lowercase hex SHA-256 of the DER, from PEM or DER alike', () => {
    const fp = fingerprint256(device.certificatePem);
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(fp).toBe(device.fingerprint256);
    expect(fingerprint256(new X509Certificate(device.certificatePem).raw)).toBe(fp);
    expect(fp).toBe(new X509Certificate(device.certificatePem).fingerprint256.replace(/:/g, '').toLowerCase());
    const viaOpenssl = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', f.device]);
    expect(viaOpenssl.trim().split('=')[1].replace(/:/g, '').toLowerCase()).toBe(fp);
  });

  it('refuses what is not a certificate', () => {
    expect(() => fingerprint256('nope')).toThrow(expect.objectContaining({ reason: 'bad-certificate' }));
    expect(() => fingerprint256(Buffer.from([1, 2, 3]))).toThrow(expect.objectContaining({ reason: 'bad-certificate' }));
  });
});

describe('TLS with the generated PKI', () => {
  let server: tls.Server;
  let port: number;
  const peers: X509Certificate[] = [];
  const clientErrors: Error[] = [];

  beforeAll(async () => {
    server = tls.createServer(
      { key: pki.serverKeyPem, cert: pki.serverCertPem, ca: pki.caCertPem, requestCert: true, rejectUnauthorized: true },
      (socket) => {
        peers.push(socket.getPeerX509Certificate()!);
        socket.end('ok');
      },
    );
    server.on('tlsClientError', (e) => clientErrors.push(e));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server?.close();
  });

  /** Connects to 127.0.0.1 (so the IP SAN is what the client checks); resolves with what the server sent. */
  function connect(client: tls.ConnectionOptions): Promise<{ data: string; error?: Error }> {
    return new Promise((resolve) => {
      let data = '';
      let error: Error | undefined;
      const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.caCertPem, ...client });
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (data += d));
      socket.on('error', (e) => (error = e));
      socket.on('close', () => resolve({ data, error }));
    });
  }

  it('accepts the device certificate and sees its fingerprint', async () => {
    const before = peers.length;
    const r = await connect({ key: device.privateKeyPem, cert: device.certificatePem });
    expect(r.error).toBeUndefined();
    expect(r.data).toBe('ok');
    expect(peers.length).toBe(before + 1);
    const peer = peers.at(-1)!;
    expect(fingerprint256(peer.raw)).toBe(device.fingerprint256);
    expect(fingerprint256(peer.raw)).toBe(fingerprint256(device.certificatePem));
  });

  it('works with TLS 1.2 ECDHE-RSA-AES-GCM only (what dcmtk 3.6.7 offers by default)', async () => {
    const r = await connect({
      key: device.privateKeyPem,
      cert: device.certificatePem,
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256',
    });
    expect(r.error).toBeUndefined();
    expect(r.data).toBe('ok');
  });

  it('accepts the server certificate as a client certificate (Tresor as C-MOVE SCU)', async () => {
    const r = await connect({ key: pki.serverKeyPem, cert: pki.serverCertPem });
    expect(r.data).toBe('ok');
    expect(fingerprint256(peers.at(-1)!.raw)).toBe(fingerprint256(pki.serverCertPem));
  });

  it('refuses a self-signed client certificate from another CA', async () => {
    const keyFile = path.join(tmp, 'foreign.key');
    const certPem = openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-subj', '/CN=MODALITY1', '-days', '1']);
    const before = { peers: peers.length, errors: clientErrors.length };
    const r = await connect({ key: await readFile(keyFile, 'utf8'), cert: certPem });
    expect(r.data).toBe('');
    expect(peers.length).toBe(before.peers);
    expect(clientErrors.length).toBe(before.errors + 1);
  });

  it('refuses a client without a certificate', async () => {
    const before = peers.length;
    const r = await connect({});
    expect(r.data).toBe('');
    expect(peers.length).toBe(before);
  });

  it('completes a handshake with dcmtk echoscu using the device certificate', async () => {
    // dcmtk is required (CI installs it): a missing echoscu fails here, never skips.
    expect(spawnSync('echoscu', ['--version']).status, 'echoscu (Debian dcmtk) is not installed').toBe(0);
    const before = peers.length;
    const child = spawn('echoscu', ['-aet', 'MODALITY1', '+tls', f.deviceKey, f.device, '+cf', f.ca, '127.0.0.1', String(port)], {
      stdio: 'ignore',
    });
    // The server answers 'ok' instead of an A-ASSOCIATE-AC, so echoscu fails after the handshake.
    await once(child, 'exit');
    expect(peers.length).toBe(before + 1);
    expect(fingerprint256(peers.at(-1)!.raw)).toBe(device.fingerprint256);
  });
});

describe('loadPki (operator-provided files)', () => {
  let dir: string;
  const file = (n: string) => path.join(dir, n);

  beforeAll(async () => {
    dir = path.join(tmp, 'operator');
    await mkdir(dir);
    // An operator CA (EC P-256, to exercise ECDSA signing) and a server cert with a PKCS#1 key.
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.crt'), '-subj', '/O=Hospital/CN=Hospital CA', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    openssl(['genrsa', '-traditional', '-out', file('server.key'), '2048']);
    openssl(['req', '-new', '-key', file('server.key'), '-subj', '/CN=pacs.hospital', '-out', file('server.csr')]);
    openssl(['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.crt'), '-days', '10']);
  });

  it('loads cert, key and CA, normalises the key to PKCS#8, and cannot issue without the CA key', async () => {
    expect(await readFile(file('server.key'), 'utf8')).toMatch(/BEGIN RSA PRIVATE KEY/);
    const loaded = await loadPki({ cert: file('server.crt'), key: file('server.key'), ca: file('ca.crt') });
    expect(loaded.serverKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(loaded.caKeyPem).toBeUndefined();
    expect(canIssueDeviceCertificates(loaded)).toBe(false);
    await expect(issueDeviceCertificate(loaded, { aeTitle: 'X' })).rejects.toMatchObject({ kind: 'unavailable', reason: 'ca-key-unavailable' });
  });

  it('signs device CSRs with an operator EC CA key when given one', async () => {
    const loaded = await loadPki({ cert: file('server.crt'), key: file('server.key'), ca: file('ca.crt'), caKey: file('ca.key') });
    expect(canIssueDeviceCertificates(loaded)).toBe(true);
    const { csrPem } = makeCsr(['-newkey', 'rsa:2048']);
    const signed = await signDeviceCsr(loaded, { aeTitle: 'MR1', csrPem });
    const out = await put('op-device.crt', signed.certificatePem);
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', file('ca.crt'), out])).toContain('OK');
    expect(openssl(['x509', '-noout', '-text', '-in', out])).toContain('ecdsa-with-SHA256');
    // Never outlives the 30-day CA, even when asked for a year.
    expect(Date.parse(new X509Certificate(signed.certificatePem).validTo)).toBeLessThanOrEqual(
      Date.parse(new X509Certificate(loaded.caCertPem).validTo),
    );
  });

  it('refuses a key that does not match, and a non-self-signed certificate without a CA', async () => {
    await expect(loadPki({ cert: file('server.crt'), key: file('ca.key'), ca: file('ca.crt') })).rejects.toMatchObject({ reason: 'tls-key-mismatch' });
    await expect(loadPki({ cert: file('server.crt'), key: file('server.key') })).rejects.toMatchObject({ reason: 'tls-ca-missing' });
    await expect(loadPki({ cert: file('missing.crt'), key: file('server.key') })).rejects.toMatchObject({ reason: 'tls-file-unreadable' });
  });

  it('takes the root from the certificate file when it carries one', async () => {
    await writeFile(file('chain.crt'), (await readFile(file('server.crt'), 'utf8')) + (await readFile(file('ca.crt'), 'utf8')));
    const loaded = await loadPki({ cert: file('chain.crt'), key: file('server.key') });
    expect(fingerprint256(loaded.caCertPem)).toBe(fingerprint256(await readFile(file('ca.crt'), 'utf8')));
    expect(fingerprint256(loaded.serverCertPem)).toBe(fingerprint256(await readFile(file('server.crt'), 'utf8')));
  });
});

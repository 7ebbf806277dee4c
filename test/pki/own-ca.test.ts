// Issue 10 item 1: with the clinic's own PKI (TRESOR_TLS_CERT/KEY/CA), device
// certificates can be issued once TRESOR_TLS_CA_KEY names the CA's key: Tresor, started
// from that configuration (config → createDeps → loadPki), issues a device certificate
// signed by the clinic's CA, and dcmtk storescu stores with it over TLS, trusting only
// that CA. Without the CA key the refusal names the setting to set; a CA key without
// the rest of the PKI, or one that is not the CA's, stops the start with one message.

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { dimseServerDeps } from '../../src/deps.js';
import { startDimseServer, type DimseServer } from '../../src/dimse/server.js';
import { databasesUnderTest } from '../helpers/db.js';
import { freePort, run, tlsArgs } from '../helpers/dimse-tools.js';
import { ADMIN_PASSWORD } from '../helpers/fixtures.js';
import { startTestServer, tempDir, type TestServer } from '../helpers/http.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const SAMPLE = path.join(SAMPLE_DIR, 'CT_small.dcm');

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
}

/** A clinic CA and a server certificate it signed, made with openssl as an operator would. */
async function clinicPki(dir: string): Promise<{ cert: string; key: string; ca: string; caKey: string }> {
  const f = (n: string) => path.join(dir, n);
  await openssl(['req', '-x509', '-newkey', 'rsa:3072', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=Clinic Root CA', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await fs.writeFile(f('server.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await openssl(['req', '-new', '-newkey', 'rsa:3072', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=pacs.clinic.test']);
  await openssl(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-CAserial', f('ca.srl'), '-days', '20', '-sha256', '-extfile', f('server.ext'), '-out', f('server.crt')]);
  for (const k of ['ca.key', 'server.key']) await fs.chmod(f(k), 0o600);
  return { cert: f('server.crt'), key: f('server.key'), ca: f('ca.crt'), caKey: f('ca.key') };
}

let dir: string;
let own: { cert: string; key: string; ca: string; caKey: string };
beforeAll(async () => {
  dir = await tempDir('tresor-own-ca-');
  own = await clinicPki(dir);
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('the clinic’s own CA key (TRESOR_TLS_CA_KEY)', () => {
  it('is refused at start without the rest of the PKI, naming what to give', () => {
    expect(() => loadConfig({ dataDir: dir, tlsCaKey: own.caKey }, {})).toThrow(/TRESOR_TLS_CA_KEY.*is the key of your own CA.*TRESOR_TLS_CERT.*TRESOR_TLS_KEY.*TRESOR_TLS_CA/);
  });

  it('that is not the CA’s key stops the start', async () => {
    const d = await tempDir('tresor-own-ca-wrong-');
    const t = await databasesUnderTest()[0]!.open();
    try {
      const config = loadConfig({ dataDir: d, tlsCert: own.cert, tlsKey: own.key, tlsCa: own.ca, tlsCaKey: own.key }, {});
      await expect(startTestServer({ db: t.db, dataDir: d, config: { tls: config.tls } })).rejects.toThrow(/key|match/i);
    } finally {
      await t.close();
      await fs.rm(d, { recursive: true, force: true });
    }
  });
});

describe.each(databasesUnderTest())('device certificates from the clinic’s own CA on $name', (dbu) => {
  let t: Awaited<ReturnType<typeof dbu.open>>;
  let s: TestServer;
  let dimse: DimseServer;
  let token: string;
  let data: string;

  beforeAll(async () => {
    t = await dbu.open();
    data = await tempDir('tresor-own-ca-data-');
    // The settings as an operator gives them, parsed by the one config reader.
    const config = loadConfig({ dataDir: data, tlsCert: own.cert, tlsKey: own.key, tlsCa: own.ca, tlsCaKey: own.caKey }, {});
    s = await startTestServer({ db: t.db, dataDir: data, adminPassword: ADMIN_PASSWORD, config: { tls: config.tls, host: '127.0.0.1', dimsePort: await freePort() } });
    dimse = await startDimseServer(dimseServerDeps(s.deps));
    token = await s.login('admin', ADMIN_PASSWORD);
    expect((await s.request('POST', '/admin/departments', { token, body: { name: 'radiology' } })).status).toBe(201);
    expect((await s.request('POST', '/admin/devices', { token, body: { aeTitle: 'CT_OWN', roles: [{ department: 'radiology', role: 'writer' }] } })).status).toBe(201);
  });
  afterAll(async () => {
    await dimse?.close();
    await s?.close();
    await t?.close();
    await fs.rm(data, { recursive: true, force: true });
  });

  it('issues a certificate signed by the clinic CA, and storescu stores with it over TLS', async () => {
    expect(s.ca).toBe(await fs.readFile(own.ca, 'utf8'));
    const issued = await s.request('POST', '/admin/devices/CT_OWN/certificate', { token, body: {} });
    expect(issued.status, issued.text).toBe(201);
    const keyPath = path.join(data, 'ct.key');
    const certPath = path.join(data, 'ct.crt');
    await fs.writeFile(keyPath, issued.body.privateKey, { mode: 0o600 });
    await fs.writeFile(certPath, issued.body.certificate);
    // openssl agrees it chains to the clinic CA (not to anything Tresor generated).
    const verified = await run('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', own.ca, certPath]);
    expect(verified.stdout).toContain(': OK');
    const sent = await run('storescu', [...tlsArgs({ keyPath, certPath }, own.ca), '-aet', 'CT_OWN', '-aec', 'TRESOR', '127.0.0.1', String(dimse.port), SAMPLE]);
    expect(sent.code, sent.stderr).toBe(0);
    const studies = await s.request('GET', '/dicomweb/studies', { token, headers: { accept: 'application/dicom+json' } });
    expect(studies.body).toHaveLength(1);
  });
});

describe('without TRESOR_TLS_CA_KEY', () => {
  it('refuses to issue, saying which setting to give', async () => {
    const data = await tempDir('tresor-own-ca-nokey-');
    const db = databasesUnderTest()[0]!;
    const t = await db.open();
    const config = loadConfig({ dataDir: data, tlsCert: own.cert, tlsKey: own.key, tlsCa: own.ca }, {});
    const s = await startTestServer({ db: t.db, dataDir: data, adminPassword: ADMIN_PASSWORD, config: { tls: config.tls } });
    try {
      const token = await s.login('admin', ADMIN_PASSWORD);
      expect((await s.request('POST', '/admin/departments', { token, body: { name: 'radiology' } })).status).toBe(201);
      expect((await s.request('POST', '/admin/devices', { token, body: { aeTitle: 'CT_NOKEY', roles: [{ department: 'radiology', role: 'writer' }] } })).status).toBe(201);
      const r = await s.request('POST', '/admin/devices/CT_NOKEY/certificate', { token, body: {} });
      expect(r.status).toBe(503);
      expect(r.text).toMatch(/ca-key-unavailable/);
      expect(r.text).toMatch(/TRESOR_TLS_CA_KEY/);
    } finally {
      await s.close();
      await t.close();
      await fs.rm(data, { recursive: true, force: true });
    }
  });
});

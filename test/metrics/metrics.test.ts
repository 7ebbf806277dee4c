// Prometheus metrics end to end (issue 10, item 4): the server as `tresor serve` starts
// it, with TRESOR_METRICS_PORT on loopback and a token file; a C-STORE over TLS
// (dcmtk storescu), a STOW-RS, a QIDO-RS and a failed login through curl; then the
// scrape, with curl: the counters moved, every line parses, no UID or patient name
// is in it, and without the token the scrape is refused.

import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { run } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';
import { parsePrometheusText, startServed, type Served } from '../helpers/served.js';

const CT = path.join(SAMPLE_DIR, 'CT_small.dcm');
const MR = path.join(SAMPLE_DIR, 'MR_small.dcm');
const PASSWORD = 'writer-password-123';

async function tags(file: string): Promise<{ patientName: string; uids: string[] }> {
  const r = await run('dcmdump', ['+P', 'PatientName', '+P', 'StudyInstanceUID', '+P', 'SeriesInstanceUID', '+P', 'SOPInstanceUID', file]);
  const values = [...r.stdout.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1]);
  return { patientName: values[0], uids: values.slice(1) };
}

describe('metrics: GET /metrics on TRESOR_METRICS_PORT', () => {
  let s: Served;
  let token: string;
  let scrape: () => Promise<{ status: number; body: string }>;

  beforeAll(async () => {
    token = randomBytes(24).toString('hex');
    s = await startServed((dir) => {
      const tokenFile = path.join(dir, 'metrics-token');
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      return { metrics: { host: '127.0.0.1', port: 0, tokenFile } };
    });
    scrape = () => s.curl(['-H', `Authorization: Bearer ${token}`, `http://127.0.0.1:${s.server.metricsPort}/metrics`]);
    await s.department('radiology');
    await s.user('writer1', PASSWORD, [['radiology', 'writer']]);
  }, 120_000);
  afterAll(async () => s?.close());

  it('counts a C-STORE, a STOW, a QIDO and a failed login; the text parses and holds no UID or patient name', async () => {
    const modality = await s.device('MOD1', [['radiology', 'writer']]);
    const store = await run('storescu', ['+tls', modality.keyPath, modality.certPath, '+cf', s.caPath, '-aet', 'MOD1', '-aec', 'TRESOR', '127.0.0.1', String(s.server.dimsePort), CT]);
    expect(store.code, store.stderr).toBe(0);

    const bearer = await s.token('writer1', PASSWORD);
    const boundary = 'tresor-metrics-test';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
      await fs.readFile(MR),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const bodyFile = path.join(s.dir, 'stow.bin');
    await fs.writeFile(bodyFile, body);
    const stow = await s.curl(['-X', 'POST', `${s.base}/dicomweb/studies`, '-H', `Authorization: Bearer ${bearer}`, '-H', `Content-Type: multipart/related; type="application/dicom"; boundary=${boundary}`, '-H', 'Accept: application/dicom+json', '--data-binary', `@${bodyFile}`]);
    expect(stow.status, stow.body).toBe(200);
    const qido = await s.curl(['-H', `Authorization: Bearer ${bearer}`, `${s.base}/dicomweb/studies?PatientName=*`]);
    expect(qido.status).toBe(200);
    const failed = await s.curl(['-X', 'POST', `${s.base}/auth/token`, '-H', 'content-type: application/json', '-d', JSON.stringify({ username: 'writer1', password: 'not-the-password' })]);
    expect(failed.status).toBe(401);

    const r = await scrape();
    expect(r.status).toBe(200);
    const m = parsePrometheusText(r.body);
    const v = (k: string) => m.get(k) ?? NaN;
    expect(v('tresor_stores_total{door="dimse",outcome="success"}')).toBe(1);
    expect(v('tresor_stores_total{door="dicomweb",outcome="success"}')).toBe(1);
    expect(v('tresor_stored_bytes_total{door="dimse"}')).toBeGreaterThan(1000);
    expect(v('tresor_stored_bytes_total{door="dicomweb"}')).toBeGreaterThan(1000);
    expect(v('tresor_store_duration_seconds_count{door="dimse"}')).toBe(1);
    expect(v('tresor_queries_total{door="dicomweb",outcome="success"}')).toBe(1);
    expect(v('tresor_query_duration_seconds_count{door="dicomweb"}')).toBe(1);
    expect(v('tresor_logins_total{outcome="failure"}')).toBe(1);
    expect(v('tresor_logins_total{outcome="success"}')).toBe(1);
    expect(v('tresor_errors_total{door="none",kind="unauthenticated",reason="bad-credentials"}')).toBe(1);
    expect(v('tresor_anonymous_refusals_total{door="auth",reason="bad-credentials"}')).toBe(1);
    // Both doors spool to a file, which the filesystem store adopts (renames), never copies:
    // the wrapper must forward adopt() (issue 13: it once did not, and every object was
    // written and fsynced twice).
    expect(v('tresor_blob_store_duration_seconds_count{operation="adopt",outcome="success"}')).toBe(2);
    expect(m.has('tresor_blob_store_duration_seconds_count{operation="put",outcome="success"}')).toBe(false);
    expect(v('tresor_database_query_duration_seconds_count{outcome="success"}')).toBeGreaterThan(10);
    // Generated CA (10 years), server certificate (2 years), the device's certificate.
    expect(v('tresor_certificate_expiry_seconds{certificate="ca"}')).toBeGreaterThan(365 * 86400);
    expect(v('tresor_certificate_expiry_seconds{certificate="server"}')).toBeGreaterThan(30 * 86400);
    expect(v('tresor_certificate_expiry_seconds{certificate="device"}')).toBeGreaterThan(30 * 86400);
    expect(m.has('tresor_dimse_associations')).toBe(true);
    expect(v('tresor_http_connections')).toBeGreaterThanOrEqual(0);
    expect(m.has('tresor_process_cpu_user_seconds_total')).toBe(true);
    for (const name of new Set([...m.keys()].map((k) => k.split('{')[0]))) expect(name.startsWith('tresor_'), name).toBe(true);

    for (const f of [CT, MR]) {
      const t = await tags(f);
      expect(t.uids.length).toBe(3);
      for (const secret of [t.patientName, ...t.uids]) {
        expect(secret.length).toBeGreaterThan(3);
        expect(r.body).not.toContain(secret);
      }
    }
    expect(r.body).not.toContain('writer1');
    expect(r.body).not.toContain('MOD1');
  }, 120_000);

  it('counts a lockout once an account is locked after repeated failures', async () => {
    await s.user('victim1', PASSWORD, [['radiology', 'reader']]);
    for (let i = 0; i < 6; i++) {
      const r = await s.curl(['-X', 'POST', `${s.base}/auth/token`, '-H', 'content-type: application/json', '-d', JSON.stringify({ username: 'victim1', password: `wrong-password-${i}` })]);
      expect(r.status).toBe(401);
    }
    const m = parsePrometheusText((await scrape()).body);
    expect(m.get('tresor_lockouts_total{scope="account"}')).toBe(1);
    expect(m.get('tresor_errors_total{door="none",kind="unauthenticated",reason="locked"}')).toBe(1);
  }, 60_000);

  it('refuses a scrape without the token, or with another one', async () => {
    const none = await s.curl([`http://127.0.0.1:${s.server.metricsPort}/metrics`]);
    expect(none.status).toBe(401);
    expect(none.body).not.toContain('tresor_');
    const wrong = await s.curl(['-H', `Authorization: Bearer ${token}x`, `http://127.0.0.1:${s.server.metricsPort}/metrics`]);
    expect(wrong.status).toBe(401);
    const other = await s.curl(['-H', `Authorization: Bearer ${token}`, `http://127.0.0.1:${s.server.metricsPort}/`]);
    expect(other.status).toBe(404);
  });

  it('will not bind metrics off loopback without a token file (configuration error naming the setting)', () => {
    expect(() => loadConfig({ metricsPort: '9464', metricsHost: '0.0.0.0' }, {})).toThrow(ConfigError);
    expect(() => loadConfig({}, { TRESOR_METRICS_PORT: '9464', TRESOR_METRICS_HOST: '192.0.2.10' })).toThrow(/TRESOR_METRICS_TOKEN_FILE/);
    expect(loadConfig({}, { TRESOR_METRICS_PORT: '9464', TRESOR_METRICS_HOST: '0.0.0.0', TRESOR_METRICS_TOKEN_FILE: '/x' }).metrics).toEqual({ port: 9464, host: '0.0.0.0', tokenFile: '/x' });
    expect(loadConfig({}, {}).metrics).toBeUndefined();
  });
});

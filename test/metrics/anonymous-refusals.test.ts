// Issue 14 "Also": refusals of callers nobody knows — bad or missing tokens (401), rate
// limits (429), failed TLS handshakes and connections that never associate on the DICOM
// port, STOW-RS requests abandoned mid-body — are counted (metrics) and audited
// rate-limited: a flood leaves a bounded number of rows whose counts add up to the
// counter, nothing is lost and nothing floods the hash chain.

import fs from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRow } from '../../src/core/audit.js';
import { run } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';
import { startServed, type Served } from '../helpers/served.js';

const PASSWORD = 'writer-password-123';

async function counter(s: Served, labels: Record<string, string>): Promise<number> {
  const got = await s.server.deps.metrics.anonymousRefusals.get();
  return got.values.find((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))?.value ?? 0;
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never: ${what}`);
}

/** How many refusals of `reason` the trail tells: one per row, plus the counts of summary rows. */
function told(rows: AuditRow[], reason: string): number {
  let n = 0;
  for (const r of rows) {
    if (r.details.reason === reason) n += 1 + Number(r.details.suppressedBefore ?? 0);
    const counts = r.details.counts as Record<string, number> | undefined;
    if (r.details.reason === 'suppressed' && counts) n += counts[reason] ?? 0;
  }
  return n;
}

describe('anonymous refusals: counted, audited rate-limited', () => {
  let s: Served;
  let agent: https.Agent;
  let bearer: string;
  const request = (method: string, url: string, headers: Record<string, string>, body?: string) =>
    new Promise<number>((resolve, reject) => {
      const req = https.request(`${s.base}${url}`, { method, headers, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });

  beforeAll(async () => {
    s = await startServed();
    agent = new https.Agent({ ca: await fs.readFile(s.caPath), keepAlive: true, maxSockets: 20 });
    await s.department('radiology');
    await s.user('writer1', PASSWORD, [['radiology', 'writer']]);
    // Before the rate-limit test uses up this address's logins.
    bearer = await s.token('writer1', PASSWORD);
  }, 120_000);
  afterAll(async () => {
    agent?.destroy();
    await s?.close();
  });

  it('a burst of 200 bad-token requests: the counter says 200, at most 20 rows, and the summary row carries the rest', async () => {
    const statuses = await Promise.all(Array.from({ length: 200 }, () => request('GET', '/dicomweb/studies', { authorization: 'Bearer not.a.token' })));
    expect(statuses.every((c) => c === 401)).toBe(true);
    expect(await counter(s, { door: 'dicomweb', reason: 'invalid-token' })).toBe(200);
    const before = await s.server.deps.audit.list({ action: 'token.refused', limit: 1000 });
    expect(before.length).toBe(20);
    await s.server.deps.flushRefusals();
    const after = await s.server.deps.audit.list({ action: 'token.refused', limit: 1000 });
    expect(after.length).toBe(21);
    const summary = after.find((r) => r.details.reason === 'suppressed');
    expect(summary?.details.suppressed).toBe(180);
    expect(summary?.source).toBe('127.0.0.1');
    // A request without any token is refused and audited the same way (held back: this minute's 20 rows are used up).
    expect(await request('GET', '/dicomweb/studies', {})).toBe(401);
    expect(await counter(s, { door: 'dicomweb', reason: 'missing-token' })).toBe(1);
    await s.server.deps.flushRefusals();
    const last = await s.server.deps.audit.list({ action: 'token.refused', limit: 1000 });
    expect(last.length).toBe(22);
    expect(last.filter((r) => r.details.reason === 'suppressed').map((r) => r.details.suppressed).sort()).toEqual([1, 180]);
    expect(await s.server.deps.audit.verify()).toMatchObject({ ok: true });
  }, 60_000);

  it('429s of the login rate limit are counted and audited', async () => {
    const body = JSON.stringify({ username: 'nobody-here', password: 'wrong-password-1' });
    const statuses: number[] = [];
    for (let i = 0; i < 35; i++) statuses.push(await request('POST', '/auth/token', { 'content-type': 'application/json' }, body));
    const limited = statuses.filter((c) => c === 429).length;
    expect(limited).toBeGreaterThanOrEqual(5);
    expect(await counter(s, { door: 'auth', reason: 'rate-limited' })).toBe(limited);
    const rows = await s.server.deps.audit.list({ action: 'security-alert', limit: 1000 });
    expect(told(rows, 'rate-limited')).toBe(limited);
  }, 60_000);

  it('DICOM port: plaintext (failed TLS handshakes) and a TLS client without a certificate that never associates', async () => {
    const port = s.server.dimsePort;
    for (let i = 0; i < 30; i++) {
      await new Promise<void>((resolve) => {
        const c = net.connect(port, '127.0.0.1', () => c.write(Buffer.from('0100000000cc0001', 'hex')));
        c.on('error', () => resolve());
        c.on('close', () => resolve());
      });
    }
    await until('30 handshake failures counted', async () => (await counter(s, { door: 'dimse', reason: 'tls-handshake' })) === 30);
    // openssl s_client: TLS without a client certificate, then nothing (stdin is closed).
    // (It stays open until ARTIM closes it: the three run side by side.)
    const clients = await Promise.all([1, 2, 3].map(() => run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', s.caPath, '-quiet'], { timeoutMs: 30_000 })));
    for (const r of clients) expect(r.stderr).toMatch(/verify return:1/);
    await until('3 connections without association counted', async () => (await counter(s, { door: 'dimse', reason: 'no-association' })) === 3);
    await s.server.deps.flushRefusals();
    const rows = await s.server.deps.audit.list({ action: 'security-alert', limit: 1000 });
    expect(told(rows, 'tls-handshake')).toBe(30);
    expect(told(rows, 'no-association')).toBe(3);
    // Bounded: per source and minute at most 20 single rows, plus summaries.
    expect(rows.filter((r) => r.details.reason !== 'suppressed').length).toBeLessThanOrEqual(20);
    expect(rows.every((r) => r.outcome === 'denied' && r.principalKind === 'anonymous')).toBe(true);
  }, 120_000);

  it('HTTPS port: plaintext HTTP (a failed TLS handshake) is counted and audited', async () => {
    const port = Number(new URL(s.base).port);
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const c = net.connect(port, '127.0.0.1', () => c.write('GET /dicomweb/studies HTTP/1.1\r\nHost: x\r\n\r\n'));
        c.on('error', () => resolve());
        c.on('close', () => resolve());
      });
    }
    await until('5 HTTPS handshake failures counted', async () => (await counter(s, { door: 'dicomweb', reason: 'tls-handshake' })) === 5);
    await s.server.deps.flushRefusals();
    const rows = await s.server.deps.audit.list({ action: 'security-alert', limit: 1000 });
    expect(told(rows.filter((r) => r.details.via === 'dicomweb' || r.details.reason === 'suppressed'), 'tls-handshake')).toBeGreaterThanOrEqual(5);
  }, 60_000);

  it('a STOW-RS abandoned mid-multipart is counted and audited, and leaves no blob and no temporary file', async () => {
    const dicom = await fs.readFile(path.join(SAMPLE_DIR, 'MR_small.dcm'));
    const boundary = 'abandoned-stow';
    await new Promise<void>((resolve) => {
      const req = https.request(`${s.base}/dicomweb/studies`, {
        method: 'POST',
        agent: new https.Agent({ ca: agent.options.ca, keepAlive: false }),
        headers: {
          authorization: `Bearer ${bearer}`,
          'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
          'content-length': String(dicom.length * 4),
          accept: 'application/dicom+json',
        },
      });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.write(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
      req.write(dicom.subarray(0, 4000));
      // The client goes away in the middle of the part.
      setTimeout(() => req.destroy(), 300);
    });
    await until('the abandoned STOW counted', async () => (await counter(s, { door: 'dicomweb', reason: 'stow-abandoned' })) === 1);
    await s.server.deps.flushRefusals();
    expect(told(await s.server.deps.audit.list({ action: 'security-alert', limit: 1000 }), 'stow-abandoned')).toBe(1);
    const dataDir = s.server.deps.config.dataDir;
    await until('no temporary file left', async () => (await fs.readdir(path.join(dataDir, 'tmp'))).length === 0);
    const blobs = await fs.readdir(path.join(dataDir, 'blobs'), { recursive: true, withFileTypes: true }).catch(() => []);
    expect(blobs.filter((e) => e.isFile())).toEqual([]);
    expect(await s.server.deps.db('instances').count({ n: '*' }).first()).toMatchObject({ n: expect.anything() });
    expect(Number((await s.server.deps.db('instances').count({ n: '*' }).first())?.n)).toBe(0);
  }, 60_000);
});

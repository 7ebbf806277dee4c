// The console's page and assets: served without login with a strict CSP, the page for any
// non-API path, long-cached hashed assets, a helpful page when nothing is built, and API
// paths that still answer JSON 401/404 (never HTML).

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { openDb, migrate } from '../../src/db/knex.js';
import { expectErrorBody } from '../helpers/error-body.js';
import { ADMIN_PASSWORD } from '../helpers/fixtures.js';
import { startTestServer, tempDir, testPki, type TestServer } from '../helpers/http.js';

const INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-1a2b3c.js"></script></head><body><div id="app"></div></body></html>';

function expectStrictCsp(csp: unknown): void {
  const v = String(csp);
  expect(v).toContain("default-src 'self'");
  expect(v).toContain("frame-ancestors 'none'");
  expect(v).not.toContain('unsafe-inline');
  expect(v).not.toContain('unsafe-eval');
  // Only 'self', 'none', data: and blob: sources: no third-party origin.
  expect(v).not.toMatch(/https?:|\*/);
}

describe('console static files', () => {
  let pki: Pki;
  let db: Db;
  let dir: string;
  let web: string;
  let s: TestServer;
  let bare: TestServer;

  beforeAll(async () => {
    pki = await testPki();
    db = await openDb({});
    await migrate(db);
    dir = await tempDir();
    web = await tempDir('tresor-web-');
    await fs.mkdir(path.join(web, 'assets'));
    await fs.writeFile(path.join(web, 'index.html'), INDEX);
    await fs.writeFile(path.join(web, 'assets', 'app-1a2b3c.js'), 'console.log("console");\n');
    s = await startTestServer({ db, pki, dataDir: dir, adminPassword: ADMIN_PASSWORD, webRoot: web });
    bare = await startTestServer({ db, pki, dataDir: await tempDir(), webRoot: path.join(web, 'missing') });
  });
  afterAll(async () => {
    await s?.close();
    await bare?.close();
    await db?.destroy();
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rm(web, { recursive: true, force: true });
  });

  it('GET / serves index.html as text/html with a strict CSP, no login needed', async () => {
    const r = await s.request('GET', '/', { headers: { accept: 'text/html' } });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/html/);
    expect(r.text).toBe(INDEX);
    expectStrictCsp(r.headers['content-security-policy']);
  });

  it('any non-API path serves the same page (client-side routes)', async () => {
    for (const p of ['/studies', '/admin-console/users', '/login?next=%2Fstudies', '/studies/1.2.3']) {
      const r = await s.request('GET', p, { headers: { accept: 'text/html' } });
      expect(r.status, p).toBe(200);
      expect(r.text, p).toBe(INDEX);
      expectStrictCsp(r.headers['content-security-policy']);
    }
  });

  it('assets are served with a long immutable cache; unknown assets are JSON 404', async () => {
    const r = await s.request('GET', '/assets/app-1a2b3c.js');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/javascript/);
    expect(r.headers['cache-control']).toMatch(/max-age=31536000/);
    expect(r.headers['cache-control']).toMatch(/immutable/);
    expectErrorBody(await s.request('GET', '/assets/nope.js'), 404, 'not-found');
    expect([403, 404]).toContain((await s.request('GET', '/assets/..%2f..%2findex.html')).status);
  });

  it('API paths answer JSON, never the page: 401 without credentials, 404 JSON for unknown ones', async () => {
    for (const p of ['/admin/users', '/dicomweb/studies', '/auth/session', '/console/api/system', '/admin/nothing-here', '/dicomweb/nothing']) {
      const r = await s.request('GET', p, { headers: { accept: 'text/html' } });
      expectErrorBody(r, 401);
    }
    expectErrorBody(await s.request('POST', '/studies', { body: {} }), 401);
  });

  it('without a build, / says to run npm run build', async () => {
    const r = await bare.request('GET', '/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/html/);
    expect(r.text).toContain('npm run build');
    expectStrictCsp(r.headers['content-security-policy']);
    expectErrorBody(await bare.request('GET', '/assets/app.js'), 404, 'not-found');
  });
});

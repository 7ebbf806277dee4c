// /viewer/ without a browser (the browser test is test/browser/viewer.test.ts): the
// rewritten index.html for OHIF's client-side routes, the generated app-config.js, the
// CSP, only listed files served (no path from the request reaches the filesystem), OHIF
// files Tresor never serves, and the page that says how to install missing files.

import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeps, type Deps } from '../../src/deps.js';
import { migrate, openDb, type Db } from '../../src/db/knex.js';
import { buildApp } from '../../src/http/app.js';
import { VIEWER_CSP, VIEWER_WORKER_CSP } from '../../src/http/viewer/csp.js';
import { createLogger } from '../../src/log.js';
import { testConfig } from '../helpers/config.js';
import { tempDir, testPki } from '../helpers/http.js';

// The shape of OHIF 3.13.2's dist/index.html, shortened.
const OHIF_INDEX =
  '<!doctype html><html lang="en"><head><meta charset="UTF-8"><script>console.time("scriptToView"),window.PUBLIC_URL="/"</script>' +
  '<link rel="manifest" href="/manifest.json"><link rel="icon shortcut" href="/assets/favicon.ico">' +
  '<script rel="preload" as="script" src="/app-config.js"></script><script rel="preload" as="script" type="module" src="/init-service-worker.js"></script>' +
  '<title>OHIF Viewer</title><script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script>' +
  '<script defer src="/app.bundle.0f6159c501addfe9.js"></script><link href="/app.bundle.css" rel="stylesheet"></head><body><div id="root"></div></body></html>';

describe('/viewer/', () => {
  let db: Db;
  let dir: string;
  const apps: { app: FastifyInstance; deps: Deps }[] = [];

  async function appWith(viewerDir: string): Promise<FastifyInstance> {
    const deps = await createDeps(testConfig(dir, { viewerDir }), createLogger('silent'), { db, pki: await testPki() });
    const app = await buildApp(deps, { https: null });
    apps.push({ app, deps });
    return app;
  }

  let app: FastifyInstance;
  beforeAll(async () => {
    db = await openDb({});
    await migrate(db);
    dir = await tempDir('tresor-viewer-');
    const dist = path.join(dir, 'dist');
    await fs.mkdir(path.join(dist, 'assets'), { recursive: true });
    await fs.writeFile(path.join(dist, 'index.html'), OHIF_INDEX);
    await fs.writeFile(path.join(dist, 'app.bundle.0f6159c501addfe9.js'), 'console.log("ohif");\n');
    await fs.writeFile(path.join(dist, 'app.bundle.css'), 'body{}\n');
    await fs.writeFile(path.join(dist, 'assets', 'favicon.ico'), Buffer.from([0, 0, 1, 0]));
    await fs.writeFile(path.join(dist, 'app-config.js'), 'window.config = { dataSources: [{ wadoRoot: "https://d14fa38qiwhyfd.cloudfront.net" }] };');
    await fs.writeFile(path.join(dist, 'google.js'), '// the Google Cloud demo configuration');
    await fs.writeFile(path.join(dist, 'init-service-worker.js'), 'importScripts("https://storage.googleapis.com/x.js")');
    await fs.writeFile(path.join(dir, 'secret.txt'), 'not for the web');
    app = await appWith(dist);
  });
  afterAll(async () => {
    for (const a of apps) {
      await a.app.close();
      await a.deps.close();
    }
    await db?.destroy();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('serves OHIF routes as the rewritten index.html: paths under /viewer/, no inline script, no service worker, the viewer CSP', async () => {
    expect((await app.inject({ url: '/viewer' })).headers.location).toBe('/viewer/');
    for (const url of ['/viewer/', '/viewer/viewer?StudyInstanceUIDs=1.2.3', '/viewer/viewer/tresor', '/viewer/segmentation']) {
      const r = await app.inject({ url });
      expect(r.statusCode, url).toBe(200);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.headers['content-security-policy']).toBe(VIEWER_CSP);
      expect(r.headers['cross-origin-embedder-policy']).toBe('require-corp');
      expect(r.body).not.toMatch(/<script>/);
      expect(r.body).not.toMatch(/init-service-worker/);
      expect(r.body).not.toMatch(/(href|src)="\/(?!viewer\/)/);
      expect(r.body).toContain('<script src="/viewer/tresor-init.js"></script>');
      expect(r.body).toContain('src="/viewer/app-config.js"');
      expect(r.body).toContain('src="/viewer/app.bundle.0f6159c501addfe9.js"');
    }
  });

  it('the page CSP names no other origin and allows no inline, eval or wasm script', () => {
    expect(VIEWER_CSP).not.toMatch(/https?:|\*/);
    const script = VIEWER_CSP.split('; ').find((d) => d.startsWith('script-src'));
    expect(script).toBe("script-src 'self'");
    // Scripts (which is what a worker's policy comes from) may compile wasm and eval: the decoders need it.
    expect(VIEWER_WORKER_CSP).toContain("script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'");
    expect(VIEWER_WORKER_CSP).not.toMatch(/https?:|\*/);
    expect(VIEWER_CSP).toContain("frame-ancestors 'none'");
  });

  it("serves Tresor's app-config.js (this origin's /dicomweb), never OHIF's", async () => {
    const r = await app.inject({ url: '/viewer/app-config.js' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(r.body).toContain('routerBasename: "/viewer"');
    expect(r.body).toContain('qidoRoot: origin + "/dicomweb"');
    expect(r.body).toContain('wadoUriRoot: origin + "/dicomweb/wado"');
    expect(r.body).toContain('omitQuotationForMultipartRequest: true');
    expect(r.body).toContain('window.location.assign("/")');
    expect(r.body).not.toMatch(/https?:\/\//);
    const init = await app.inject({ url: '/viewer/tresor-init.js' });
    expect(init.body).toContain('window.PUBLIC_URL = "/viewer/"');
  });

  it('serves listed files with their caching, and nothing else', async () => {
    const bundle = await app.inject({ url: '/viewer/app.bundle.0f6159c501addfe9.js' });
    expect(bundle.statusCode).toBe(200);
    expect(bundle.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(bundle.headers['content-security-policy']).toBe(VIEWER_WORKER_CSP);
    const css = await app.inject({ url: '/viewer/app.bundle.css' });
    expect(css.headers['cache-control']).toBe('no-cache');
    expect((await app.inject({ url: '/viewer/assets/favicon.ico' })).statusCode).toBe(200);
    for (const url of ['/viewer/missing.js', '/viewer/google.js', '/viewer/init-service-worker.js', '/viewer/../secret.txt', '/viewer/%2e%2e/secret.txt', '/viewer/..%2fsecret.txt', '/viewer/assets/../../secret.txt']) {
      const r = await app.inject({ url });
      expect(r.body, url).not.toContain('not for the web');
      expect(r.body, url).not.toContain('googleapis');
      expect(r.body, url).not.toContain('Google Cloud');
    }
    expect((await app.inject({ url: '/viewer/missing.js' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/viewer/google.js' })).statusCode).toBe(404);
  });

  it('leaves the API as it was: unauthenticated DICOMweb is still 401 JSON', async () => {
    const r = await app.inject({ url: '/dicomweb/studies' });
    expect(r.statusCode).toBe(401);
    expect(r.json().error).toBeDefined();
  });

  it('says how to install the viewer when its files are missing', async () => {
    const missing = await appWith(path.join(dir, 'nowhere'));
    for (const url of ['/viewer/', '/viewer/viewer?StudyInstanceUIDs=1.2.3', '/viewer/app.bundle.0f6159c501addfe9.js']) {
      const r = await missing.inject({ url });
      expect(r.statusCode, url).toBe(503);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.headers['content-security-policy']).toBe(VIEWER_CSP);
      expect(r.body).toContain('npm run fetch-viewer');
      expect(r.body).toContain('TRESOR_VIEWER_DIR');
    }
  });
});

// Issue 9, the built-in viewer, in a real browser: Tresor serves OHIF 3.13.2 at /viewer/
// on its own origin, configured (generated app-config.js) for its own /dicomweb, which
// the browser reaches with the console's session cookie (POST /auth/session; no token
// anywhere in the page). A user
// of department A opens a 20-slice CT in OHIF: the viewport shows the image (pixels of
// the viewport are not one colour), no error dialog; the mouse wheel changes the slice;
// the MPR layout renders three viewports. A user of department B opening the same URL
// gets no image. The page runs under the viewer's CSP (http/viewer/csp.ts) with no
// violation reported and no request to another origin. Screenshots: test-artifacts/browser/.

import type { PNG } from 'pngjs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import { VIEWER_CSP } from '../../src/http/viewer/csp.js';
import { artifact, launchBrowser } from '../helpers/browser.js';
import { differingPixels, distinctColours, pixelsOf } from '../helpers/canvas.js';
import { ctSeries, jpegLs } from '../helpers/ct-series.js';
import { databasesUnderTest } from '../helpers/db.js';
import { multipart, raw, startDicomwebServer, USER_PASSWORD, type DicomwebServer } from '../helpers/dicomweb.js';
import { testPki } from '../helpers/http.js';

interface Watch {
  violations: string[];
  foreign: string[];
  errors: string[];
}

function watch(page: Page, origin: string): Watch {
  const w: Watch = { violations: [], foreign: [], errors: [] };
  page.on('console', (m) => {
    const t = m.text();
    if (m.type() === 'error') w.errors.push(t);
    if (/Content.Security.Policy|CSP/i.test(t)) w.violations.push(t);
  });
  page.on('pageerror', (e) => w.errors.push(String(e)));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !/^(data|blob):/.test(u)) w.foreign.push(u);
  });
  return w;
}

async function collectCspReports(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __csp?: string[] }).__csp ?? []);
}

/** The largest viewport canvas' screenshot. */
async function viewportShot(page: Page, index = 0): Promise<PNG> {
  const canvas = page.locator('canvas.cornerstone-canvas').nth(index);
  return pixelsOf(await canvas.screenshot());
}

for (const dbu of databasesUnderTest().slice(0, 1)) {
  describe(`the built-in viewer in Chromium, on ${dbu.name}`, () => {
    let t: { db: Db; close(): Promise<void> };
    let s: DicomwebServer;
    let browser: Browser;
    let tokenA: string;
    let study: string;
    let jlsStudy: string;

    beforeAll(async () => {
      t = await dbu.open();
      s = await startDicomwebServer({ db: t.db, pki: await testPki() });
      await s.department('radiology');
      await s.department('cardiology');
      tokenA = await s.user('reader-a', [
        { department: 'radiology', role: 'reader' },
        { department: 'radiology', role: 'writer' },
      ]);
      await s.user('reader-b', [{ department: 'cardiology', role: 'reader' }]);
      const ct = ctSeries(20);
      study = ct.study;
      const jls = jpegLs(ctSeries(20));
      jlsStudy = jls.study;
      for (const series of [ct, jls]) {
        const m = multipart(series.slices.map((body) => ({ body })));
        const stow = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', {
          token: tokenA,
          headers: { 'content-type': m.contentType, accept: 'application/dicom+json' },
          body: m.body,
        });
        expect(stow.status, stow.text).toBe(200);
      }
      browser = await launchBrowser({ trustCertificates: [s.deps.pki.serverCertPem, ...(s.deps.pki.serverEc ? [s.deps.pki.serverEc.certPem] : [])] });
    });
    afterAll(async () => {
      await browser?.close();
      await s?.close();
      await t?.close();
    });

    /** A browser logged in as the console logs in: POST /auth/session from the page puts the session cookie in the browser's jar. */
    async function contextFor(username: string): Promise<BrowserContext> {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      // The browser itself posts the login, as the console does (Chromium checks TLS against the pinned server key).
      const page = await ctx.newPage();
      await page.goto(`${s.url}/viewer/`);
      const status = await page.evaluate(
        async ({ username, password }) =>
          (await fetch('/auth/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) })).status,
        { username, password: USER_PASSWORD },
      );
      expect(status).toBe(200);
      await page.close();
      // (OHIF itself sets an `i18next` language cookie.)
      const session = (await ctx.cookies(s.url)).find((c) => c.name === '__Host-tresor_session');
      expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
      await ctx.addInitScript(() => {
        const w = window as unknown as { __csp: string[] };
        w.__csp = [];
        document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
      });
      return ctx;
    }

    it('shows the CT, scrolls through it and opens MPR, under the viewer CSP and on this origin only', async () => {
      const ctx = await contextFor('reader-a');
      const page = await ctx.newPage();
      const w = watch(page, s.url);
      const res = await page.goto(`${s.url}/viewer/viewer?StudyInstanceUIDs=${study}`);
      expect(res?.status()).toBe(200);
      expect(res?.headers()['content-security-policy']).toBe(VIEWER_CSP);
      try {
        await page.locator('canvas.cornerstone-canvas').first().waitFor({ state: 'visible', timeout: 60_000 });
      } catch (e) {
        await page.screenshot({ path: artifact('viewer-0-failed.png') });
        throw new Error(`no viewport canvas; CSP reports ${JSON.stringify(await collectCspReports(page))}, page errors ${JSON.stringify(w.errors.slice(0, 10))}`, { cause: e });
      }
      // The viewport overlay shows the slice position once the first image is drawn.
      const overlay = page.locator('[data-cy="viewport-overlay-bottom-right"]').first();
      await expect.poll(async () => overlay.innerText(), { timeout: 60_000 }).toMatch(/\(1\/20\)/);
      // No first-visit tour covers the image (app-config.ts sets OHIF's 'ohif.tours' to none).
      await page.waitForTimeout(1000);
      expect(await page.getByText('Skip all').count()).toBe(0);
      await page.screenshot({ path: artifact('viewer-1-opened.png') });
      const first = await viewportShot(page);
      expect(distinctColours(first)).toBeGreaterThan(8);

      const box = (await page.locator('canvas.cornerstone-canvas').first().boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      for (let i = 0; i < 5; i++) await page.mouse.wheel(0, 120);
      await expect.poll(async () => overlay.innerText(), { timeout: 30_000 }).toMatch(/\((?!1\/)\d+\/20\)/);
      await page.waitForTimeout(500);
      await page.screenshot({ path: artifact('viewer-2-scrolled.png') });
      const scrolled = await viewportShot(page);
      expect(differingPixels(first, scrolled)).toBeGreaterThan(50);
      await page.locator('[data-cy="layout-button"]').first().click();
      await page.waitForTimeout(1000);
      await page.screenshot({ path: artifact('viewer-3-layout-menu.png') });
      await page.getByText('MPR', { exact: true }).first().click();
      // MPR: three volume viewports (axial, sagittal, coronal), each drawn from the volume.
      await expect.poll(async () => page.locator('[data-cy="viewport-pane"]').count(), { timeout: 60_000 }).toBe(3);
      await expect.poll(async () => page.locator('canvas.cornerstone-canvas').count(), { timeout: 60_000 }).toBeGreaterThanOrEqual(3);
      await expect
        .poll(
          async () => {
            const counts: number[] = [];
            for (let i = 0; i < 3; i++) counts.push(distinctColours(await viewportShot(page, i)));
            return Math.min(...counts);
          },
          { timeout: 90_000, interval: 2000 },
        )
        .toBeGreaterThan(8);
      await page.waitForTimeout(1000);
      await page.screenshot({ path: artifact('viewer-3-mpr.png') });
      expect(await page.getByText(/error|not available/i).count()).toBe(0);
      expect(await collectCspReports(page), 'CSP violations').toEqual([]);
      expect(w.violations, 'CSP console messages (page and workers)').toEqual([]);
      expect(w.errors, 'console errors').toEqual([]);
      expect(w.foreign, 'requests to other origins').toEqual([]);
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
      await ctx.close();
    }, 240_000);

    it('decodes a JPEG-LS series with its WebAssembly codec, under the viewer CSP', async () => {
      const ctx = await contextFor('reader-a');
      const page = await ctx.newPage();
      const w = watch(page, s.url);
      const frames: string[] = [];
      page.on('response', (r) => {
        if (r.url().includes('/frames/')) frames.push(r.url());
      });
      await page.goto(`${s.url}/viewer/viewer?StudyInstanceUIDs=${jlsStudy}`);
      const overlay = page.locator('[data-cy="viewport-overlay-bottom-right"]').first();
      await expect.poll(async () => overlay.innerText(), { timeout: 60_000 }).toMatch(/\(1\/20\)/);
      await expect.poll(async () => distinctColours(await viewportShot(page)), { timeout: 30_000, interval: 1000 }).toBeGreaterThan(8);
      await page.screenshot({ path: artifact('viewer-5-jpeg-ls.png') });
      // The frames came as stored (JPEG-LS, 1.2.840.10008.1.2.4.80): the browser decoded them.
      expect(frames.length).toBeGreaterThan(0);
      // The frames came as stored (JPEG-LS lossless): the browser's WebAssembly decoder drew them.
      const head = await page.evaluate(async (url) => {
        const r = await fetch(url, { headers: { accept: 'multipart/related; type=application/octet-stream; transfer-syntax=*' } });
        return new TextDecoder('latin1').decode(new Uint8Array(await r.arrayBuffer()).slice(0, 400));
      }, frames[0]);
      expect(head).toContain('transfer-syntax=1.2.840.10008.1.2.4.80');
      expect(w.errors.filter((e) => /decode|EvalError|WebAssembly|wasm/i.test(e)), 'decoder errors').toEqual([]);
      expect(w.violations, 'CSP console messages (page and workers)').toEqual([]);
      expect(await collectCspReports(page), 'CSP violations').toEqual([]);
      expect(w.foreign).toEqual([]);
      await ctx.close();
    }, 120_000);

    it('shows a user of another department nothing of that study', async () => {
      const ctx = await contextFor('reader-b');
      const page = await ctx.newPage();
      const w = watch(page, s.url);
      const frames: number[] = [];
      page.on('response', (r) => {
        if (/\/(frames|metadata|rendered|thumbnail)/.test(r.url())) frames.push(r.status());
      });
      await page.goto(`${s.url}/viewer/viewer?StudyInstanceUIDs=${study}`);
      await page.getByText(/not available/i).first().waitFor({ timeout: 60_000 });
      await page.screenshot({ path: artifact('viewer-4-other-department.png') });
      expect(await page.locator('canvas.cornerstone-canvas').count()).toBe(0);
      expect(frames.filter((st) => st === 200)).toEqual([]);
      expect(w.foreign).toEqual([]);
      await ctx.close();
    }, 120_000);

    it('sends a browser without a session to the console login, not a broken viewer', async () => {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await ctx.newPage();
      const dicomweb: number[] = [];
      page.on('response', (r) => {
        if (r.url().includes('/dicomweb/')) dicomweb.push(r.status());
      });
      await page.goto(`${s.url}/viewer/viewer?StudyInstanceUIDs=${study}`);
      await page.waitForURL(`${s.url}/`, { timeout: 60_000 });
      expect(dicomweb).toContain(401);
      expect(dicomweb.filter((st) => st === 200)).toEqual([]);
      await ctx.close();
    }, 120_000);
  });
}

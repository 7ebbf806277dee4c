// Debian's Chromium driven by playwright-core, for tests in test/browser/. Headless, no
// GPU, no network beyond what the page asks for (no component updates, sync, QUIC or
// background traffic), a fresh profile per launch (Playwright creates a temporary
// user-data-dir and removes it on close). WebGL runs on SwiftShader (software): OHIF's
// viewports need WebGL, and recent Chromium only falls back to SwiftShader when allowed.

import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.TRESOR_TEST_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots and other artifacts of browser tests (gitignored). */
export const ARTIFACTS = path.resolve('test-artifacts/browser');

export async function launchBrowser(): Promise<Browser> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
    ],
  });
}

export const artifact = (name: string): string => path.join(ARTIFACTS, name);

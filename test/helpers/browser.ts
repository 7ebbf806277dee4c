// Debian's Chromium driven by playwright-core, for tests in test/browser/. Headless, no
// GPU, no network beyond what the page asks for (no component updates, sync, QUIC or
// background traffic), a fresh profile per launch (Playwright creates a temporary
// user-data-dir and removes it on close). WebGL runs on SwiftShader (software): OHIF's
// viewports need WebGL, and recent Chromium only falls back to SwiftShader when allowed.

import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.TRESOR_TEST_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots and other artifacts of browser tests (gitignored). */
export const ARTIFACTS = path.resolve('test-artifacts/browser');

/** Chromium's form of a certificate's key pin: base64 SHA-256 of its SubjectPublicKeyInfo. */
export function spkiPin(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/**
 * `trustCertificates`: server certificates (PEM) Chromium accepts although their CA is not
 * in its store — only those keys (--ignore-certificate-errors-spki-list), every other
 * certificate error still fails; so tests need no blanket ignoreHTTPSErrors.
 */
export async function launchBrowser(opts: { trustCertificates?: string[] } = {}): Promise<Browser> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const pins = (opts.trustCertificates ?? []).map(spkiPin);
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
      ...(pins.length > 0 ? [`--ignore-certificate-errors-spki-list=${pins.join(',')}`] : []),
    ],
  });
}

export const artifact = (name: string): string => path.join(ARTIFACTS, name);

// Builds the console (web/) into dist/web/, which the server serves at / with
// `Content-Security-Policy: default-src 'self'`. So: no inline script or style in
// the output (no module-preload polyfill snippet, no data: URIs for small assets),
// no source maps that would publish the source, and nothing from another origin.
import { fileURLToPath } from 'node:url';
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  plugins: [preact({ prerender: { enabled: false }, devToolsEnabled: false })],
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
  },
});

// The console's front-end (web/, built by `npm run build` into dist/web): GET / and
// every other non-API GET path answer dist/web/index.html (the console routes on the
// client side), /assets/* the hashed bundles with a year of caching. No credentials are
// needed to fetch the page: the page then logs in (POST /auth/session). API paths never
// fall back to HTML: an unknown or unauthenticated API call still gets the JSON error.
//
// The page's Content-Security-Policy allows our own origin only: no inline script or
// style, no third-party origin, no framing (CSP Level 3; OWASP "Content Security Policy
// Cheat Sheet"). blob: for images and workers: the viewer renders decoded frames that way.

import fastifyStatic from '@fastify/static';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Paths that belong to the API (JSON answers only), never to the console's fallback. */
const API_PREFIXES = ['/auth/', '/admin/', '/dicomweb/', '/console/api/', '/viewer/', '/healthz', '/readyz', '/metrics', '/assets/'];
const API_EXACT = new Set(['/auth', '/admin', '/dicomweb', '/console/api', '/viewer']);

/**
 * dist/web beside the running code: dist/src/http/routes → dist/web after `tsc`;
 * src/http/routes → <repo>/dist/web from the sources (vitest). Never <repo>/web: that is
 * the front-end's source, not a build.
 */
export function defaultWebRoot(): string {
  const up = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  return path.basename(up) === 'dist' ? path.join(up, 'web') : path.join(up, 'dist', 'web');
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tresor</title></head>
<body><h1>Tresor</h1><p>The console has not been built. Run <code>npm run build</code> (or <code>npm start</code>, which builds first) and reload this page.</p>
<p>The API (<code>/auth</code>, <code>/admin</code>, <code>/dicomweb</code>) works without it.</p></body></html>
`;

export function isConsolePath(url: string): boolean {
  const p = url.split('?')[0] ?? '/';
  if (API_EXACT.has(p)) return false;
  return !API_PREFIXES.some((prefix) => p.startsWith(prefix));
}

export interface ConsoleStaticOptions {
  webRoot: string;
}

/** Sends index.html (or the "run npm run build" page) with the console's CSP. */
export async function sendConsolePage(webRoot: string, reply: FastifyReply): Promise<FastifyReply> {
  let html: string;
  try {
    html = await readFile(path.join(webRoot, 'index.html'), 'utf8');
  } catch {
    html = NOT_BUILT;
  }
  return reply
    .header('content-security-policy', CONSOLE_CSP)
    // The page is small and names hashed assets: always revalidate it, so a new build shows at once.
    .header('cache-control', 'no-cache')
    .type('text/html; charset=utf-8')
    .send(html);
}

export async function consoleStaticRoutes(app: FastifyInstance, opts: ConsoleStaticOptions): Promise<void> {
  // Every route of this (encapsulated) plugin is public: static files of the login page.
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config as object), public: true };
  });
  app.get('/', async (_request: FastifyRequest, reply: FastifyReply) => sendConsolePage(opts.webRoot, reply));
  const assets = path.join(opts.webRoot, 'assets');
  if (existsSync(assets)) {
    await app.register(fastifyStatic, {
      root: assets,
      prefix: '/assets/',
      // File names carry a content hash (Vite): a year, immutable.
      maxAge: '365d',
      immutable: true,
      index: false,
      dotfiles: 'deny',
      decorateReply: false,
    });
  } else {
    // Documented either way: without a build there are no assets to serve.
    app.get('/assets/*', async (_request, reply) => reply.callNotFound());
  }
}

// The built-in viewer at /viewer/: OHIF's prebuilt files (vendor/ohif/dist), the
// rewritten index.html (index-html.ts) for OHIF's own routes (SPA: any path under
// /viewer/ that is not a file), and the generated tresor-init.js and app-config.js.
//
// The files are public (config.public): they are OHIF's published code and hold no
// patient data; the data they load comes from /dicomweb, which authenticates every
// request (the session cookie or a bearer token). Keeping them public lets a browser
// without a session load the page and be sent to the console's login by the app's
// 401 handler (app-config.ts), instead of seeing a JSON 401.

import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { viewerAppConfigJs } from './app-config.js';
import { VIEWER_CSP, VIEWER_WORKER_CSP } from './csp.js';
import { loadViewerFiles } from './files.js';
import { viewerInitJs } from './index-html.js';
import { viewerMissingPage } from './missing-page.js';

export const VIEWER_BASENAME = '/viewer';
const BASE = `${VIEWER_BASENAME}/`;

export interface ViewerOptions {
  /** OHIF's dist folder (config.viewerDir). */
  dir: string;
  /** The DICOMweb prefix on this origin. */
  dicomweb: string;
}

/** A file name with a content hash in it (webpack's [contenthash]): never changes, so cached for a year. */
const HASHED_RE = /(^|\/)([0-9a-f]{16}\.(wasm|woff2?|ttf|png|svg)|[\w-]+\.bundle\.[0-9a-f]{16}\.js)$/;
/** A path that names a file (has an extension): missing ones are 404, not the app's page. */
const FILE_LIKE_RE = /\.[A-Za-z0-9]{1,8}$/;

function viewerHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', VIEWER_CSP)
    // Cross-origin isolation: OHIF's volume loading (MPR) uses SharedArrayBuffer when the
    // page is crossOriginIsolated. Everything the viewer loads is same-origin, so
    // require-corp costs nothing (helmet already sends Cross-Origin-Opener-Policy: same-origin).
    .header('cross-origin-embedder-policy', 'require-corp');
}

export async function viewerRoutes(app: FastifyInstance, opts: ViewerOptions): Promise<void> {
  const viewer = loadViewerFiles(opts.dir, BASE);
  const generated = new Map<string, { type: string; body: string }>([
    ['tresor-init.js', { type: 'text/javascript; charset=utf-8', body: viewerInitJs(BASE) }],
    ['app-config.js', { type: 'text/javascript; charset=utf-8', body: viewerAppConfigJs({ basename: VIEWER_BASENAME, dicomweb: opts.dicomweb, loginPath: '/' }) }],
  ]);
  if (viewer) {
    // Encapsulated in this plugin: reply.sendFile here does not clash with other static roots.
    await app.register(fastifyStatic, { root: viewer.root, serve: false, cacheControl: false, etag: true, lastModified: true });
  } else {
    app.log.warn({ dir: opts.dir }, 'the built-in viewer is not installed: /viewer/ explains how (npm run fetch-viewer)');
  }
  const config = { public: true };

  app.get(VIEWER_BASENAME, { config }, async (_request, reply) => reply.redirect(BASE, 308));

  app.get(`${BASE}*`, { config }, async (request, reply) => {
    viewerHeaders(reply);
    if (!viewer) {
      return reply.code(503).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(viewerMissingPage(opts.dir));
    }
    const rel = (request.params as { '*': string })['*'];
    const gen = generated.get(rel);
    if (gen) return reply.header('cache-control', 'no-cache').type(gen.type).send(gen.body);
    if (viewer.files.has(rel)) {
      if (rel.endsWith('.js')) reply.header('content-security-policy', VIEWER_WORKER_CSP);
      reply.header('cache-control', HASHED_RE.test(rel) ? 'public, max-age=31536000, immutable' : 'no-cache');
      return reply.sendFile(rel);
    }
    if (FILE_LIKE_RE.test(rel)) {
      return reply.code(404).header('cache-control', 'no-store').type('text/plain; charset=utf-8').send('Not found: no such file in the viewer.\n');
    }
    // OHIF's client-side routes (/viewer/, /viewer/viewer?StudyInstanceUIDs=…, …).
    return reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(viewer.indexHtml);
  });
}

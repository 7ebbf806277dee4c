// The viewer's files on disk (vendor/ohif/dist, scripts/fetch-viewer.mjs), read once at
// start-up: the list of servable paths (only these are ever served: no path built from a
// request reaches the filesystem) and the rewritten index.html. Missing files are not an
// error: the server runs and /viewer/ says how to install them (missing-page.ts).

import fs from 'node:fs';
import path from 'node:path';
import { rewriteIndexHtml } from './index-html.js';

export interface ViewerFiles {
  root: string;
  /** Relative paths with '/' separators, e.g. "app.bundle.0f61….js", "assets/favicon.ico". */
  files: ReadonlySet<string>;
  indexHtml: string;
}

/** Files OHIF's build ships but Tresor never serves (Netlify settings, the Google Cloud demo config, service worker). */
const NOT_SERVED = new Set(['_headers', '_redirects', 'serve.json', 'google.js', 'init-service-worker.js', 'sw.js', 'app-config.js', 'index.html']);

function walk(root: string, dir: string, out: Set<string>): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(root, full, out);
    else if (entry.isFile()) {
      const rel = path.relative(root, full).split(path.sep).join('/');
      if (!NOT_SERVED.has(rel)) out.add(rel);
    }
  }
}

/** The viewer in `root`, or null when it is not installed there (no index.html). */
export function loadViewerFiles(root: string, base: string): ViewerFiles | null {
  const index = path.join(root, 'index.html');
  if (!fs.existsSync(index)) return null;
  const files = new Set<string>();
  walk(root, root, files);
  return { root, files, indexHtml: rewriteIndexHtml(fs.readFileSync(index, 'utf8'), base) };
}

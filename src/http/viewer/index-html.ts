// OHIF's prebuilt index.html assumes it is served at the origin root and runs two inline
// scripts. Tresor serves it under /viewer/ with a CSP without 'unsafe-inline' (csp.ts), so
// at start-up the page is rewritten once, in memory (the vendored file is not touched):
//  - root-relative href/src ("/app.bundle…js") → under the viewer base ("/viewer/app.bundle…js");
//  - the inline scripts (window.PUBLIC_URL, browserImportFunction) are replaced by one
//    same-origin script, VIEWER_INIT_JS, served at <base>tresor-init.js;
//  - init-service-worker.js is dropped: it only unregisters service workers and would
//    importScripts() Workbox from storage.googleapis.com (a third-party origin);
//  - the Web App manifest and icon/startup-image links stay (same origin after rewriting).

/** Everything the two inline scripts of OHIF's index.html did, as a same-origin script. */
export function viewerInitJs(base: string): string {
  return [
    '// Served by Tresor in place of the inline scripts of OHIF\'s index.html (CSP without \'unsafe-inline\').',
    `window.PUBLIC_URL = ${JSON.stringify(base)};`,
    // OHIF loads extensions and modes with this global (pluginImports).
    'window.browserImportFunction = function browserImportFunction(n) { return import(n); };',
    '',
  ].join('\n');
}

const INLINE_SCRIPT_RE = /<script>[\s\S]*?<\/script>/g;
const SERVICE_WORKER_RE = /<script\b[^>]*\bsrc="\/init-service-worker\.js"[^>]*><\/script>/g;
const ROOT_RELATIVE_RE = /\b(href|src)="\/(?!\/)/g;

/** The served index.html (see the top of this file); throws when the page is not OHIF's. */
export function rewriteIndexHtml(html: string, base: string): string {
  if (!/<script\b[^>]*\bsrc="\/app\.bundle\.[0-9a-f]+\.js"/.test(html)) {
    throw new Error('index.html does not load app.bundle.*.js: not an OHIF build Tresor knows');
  }
  const out = html
    .replace(SERVICE_WORKER_RE, '')
    .replace(INLINE_SCRIPT_RE, '')
    .replace(ROOT_RELATIVE_RE, `$1="${base}`)
    .replace('<head>', `<head><script src="${base}tresor-init.js"></script>`);
  if (/<script>/.test(out) || /\b(?:href|src)="https?:/i.test(out)) throw new Error('index.html still has an inline script or an external reference');
  return out;
}

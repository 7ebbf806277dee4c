// Content-Security-Policy of every /viewer/ response, workers included (a dedicated
// worker takes the policy of its script's response). Same origin only: no directive
// names another origin. Each allowance beyond 'self' was measured with OHIF 3.13.2 in
// Chromium 156 (test/browser/viewer.test.ts collects securitypolicyviolation reports and
// the console of the page and its workers), by removing it and watching what broke:
//  - The page (index.html) gets script-src 'self' only: no inline script (index.html's
//    inline scripts are replaced by tresor-init.js, index-html.ts), no eval, no wasm;
//    loading, scrolling, MPR and a JPEG-LS series ran with no violation.
//  - Workers get 'wasm-unsafe-eval' 'unsafe-eval' (VIEWER_WORKER_CSP). The image decoders
//    (CharLS, OpenJPEG, libjpeg-turbo, OpenJPH) are WebAssembly (CSP3 §6.7.2.8) and
//    Emscripten modules whose embind start-up builds functions with `new Function`
//    (createNamedFunction): with 'wasm-unsafe-eval' alone the JPEG-LS series fails with
//    "EvalError … 'unsafe-eval' is not an allowed source" in the dicomImageLoader worker.
//    A dedicated worker takes its policy from its script's response, while a script the
//    page loads runs under the page's policy whatever its own response says: so .js
//    files carry VIEWER_WORKER_CSP and only workers may compile wasm or eval. Workers
//    have no DOM and see only what the page posts to them (pixel data to decode).
//  - style-src-elem 'unsafe-inline': OHIF inserts <style> elements at run time (React-
//    rendered <style> and the "sonner" toast library, app.bundle); without it they are
//    blocked (style-src-elem reports). Style attributes (style-src-attr, falling back to
//    style-src 'self') are not needed: React sets styles through the CSSOM, which CSP
//    does not govern, and no violation was reported for them.
//  - worker-src 'self': the decode, compute and histogram workers are same-origin bundles;
//    no blob: worker was started.
//  - img-src / font-src data: blob:: icons and fonts inlined as data: URLs, thumbnails
//    and captures as blob: URLs; connect-src blob: data: for URLs the page made itself.
//  - frame-ancestors 'none', base-uri 'none', object-src 'none', form-action 'self'.

export const VIEWER_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "worker-src 'self'",
  "style-src 'self'",
  "style-src-elem 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self' blob: data:",
  "media-src 'self' blob:",
  "manifest-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The policy of the viewer's scripts, which is the policy of a worker started from one of them (see above). */
export const VIEWER_WORKER_CSP = VIEWER_CSP.replace("script-src 'self'", "script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'");

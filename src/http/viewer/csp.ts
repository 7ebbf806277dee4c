// Content-Security-Policy of every /viewer/ response. Same origin only: no directive
// names another origin. Each allowance beyond 'self' was measured with OHIF 3.13.2 in
// Chromium (test/browser/viewer.test.ts collects securitypolicyviolation reports):
//  - script-src 'wasm-unsafe-eval': the image decoders (OpenJPEG, CharLS, libjpeg-turbo,
//    OpenJPH) are WebAssembly modules; compiling wasm needs it (CSP3 §6.7.2.8). No
//    'unsafe-eval', no 'unsafe-inline' for scripts (index.html's inline scripts are
//    replaced by tresor-init.js, index-html.ts).
//  - worker-src 'self' blob:: cornerstone's decode/compute workers are same-origin
//    bundles; some libraries start workers from blob: URLs they build in the page.
//  - style-src 'self' 'unsafe-inline': React sets style attributes and several OHIF
//    libraries insert <style> elements at run time; without it the layout breaks.
//    (Inline styles cannot run script; scripts stay strict.)
//  - img-src / font-src 'self' data: blob:: icons and fonts inlined as data: URLs,
//    thumbnails and screenshots as blob: URLs.
//  - connect-src 'self' blob: data:: DICOMweb on this origin; wasm and workers fetch
//    their own files; blob:/data: URLs the page made itself.
//  - frame-ancestors 'none', base-uri 'none', object-src 'none', form-action 'self'.

export const VIEWER_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
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

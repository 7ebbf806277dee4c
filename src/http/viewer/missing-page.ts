// What /viewer/ answers when the viewer's files are not installed (a clone without
// `npm ci`, an `npm ci --ignore-scripts`, a failed download): a page saying how to fix it.

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function viewerMissingPage(dir: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tresor viewer not installed</title></head>
<body>
<h1>The viewer is not installed</h1>
<p>Tresor's built-in viewer (OHIF 3.13.2) was not found in <code>${escapeHtml(dir)}</code>.</p>
<p>To install it, run <code>npm run fetch-viewer</code> (or <code>npm ci</code>, which runs it) in Tresor's folder,
then restart Tresor. It downloads the pinned OHIF package through npm and checks its integrity.
If npm cannot reach its registry, set your registry or proxy with <code>npm config</code> first.</p>
<p>If you keep the viewer files elsewhere, point <code>TRESOR_VIEWER_DIR</code> (<code>--viewer-dir</code>) at OHIF's <code>dist</code> folder.</p>
<p><a href="/">Back to the Tresor console</a></p>
</body></html>
`;
}

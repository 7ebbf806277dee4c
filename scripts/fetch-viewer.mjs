#!/usr/bin/env node
// Brings the built-in viewer (OHIF, prebuilt) into vendor/ohif/ on `npm ci` (root postinstall).
//
// Why not a dependency: `npm i @ohif/app@3.13.2` fails (ETARGET: @ohif/i18n@3.13.2 is not in
// the registry), but the package's own tarball carries a self-contained prebuilt `dist/`.
// So this script fetches exactly that tarball through npm (`npm pack`, which uses npm's
// cache, registry and proxy settings), checks it against the integrity pinned below
// (the value npm itself records in package-lock.json files: sha512 of the tarball), and
// extracts only `package/dist/` with the `tar` package. Nothing of OHIF's source
// dependency tree is installed.
//
// One change is made to the extracted files: OHIF's build hard-codes its public path "/"
// (webpack's `__webpack_require__.p = "/"` in the JS bundles and workers, and `url(/…)`
// in the CSS), so its lazily loaded chunks, workers, wasm and fonts would be fetched from
// the origin root; Tresor serves the viewer under /viewer/, so exactly those strings are
// rewritten to "/viewer/" (PATCH_VERSION names this rule in the manifest). Everything
// else (index.html rewriting, app-config.js) is done by Tresor when serving
// (src/http/viewer/), not here.
//
// Idempotent: when vendor/ohif/manifest.json records the pinned integrity and every file
// it lists still has its recorded sha256, nothing is fetched. Exit code 1 with a message
// saying what to do when the download or the check fails.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';

export const OHIF_PACKAGE = '@ohif/app';
export const OHIF_VERSION = '3.13.2';
export const OHIF_INTEGRITY = 'sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==';
/** Where Tresor serves the viewer; webpack's public path is set to it. */
export const VIEWER_BASE = '/viewer/';
const PUBLIC_PATH_FROM = '__webpack_require__.p = "/";';
const PUBLIC_PATH_TO = `__webpack_require__.p = "${VIEWER_BASE}";`;
const CSS_URL_FROM = 'url(/';
const CSS_URL_TO = `url(${VIEWER_BASE}`;
const PATCH_VERSION = 2;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const vendorDir = process.env.TRESOR_VIEWER_VENDOR_DIR ?? join(root, 'vendor', 'ohif');
const distDir = join(vendorDir, 'dist');
const manifestPath = join(vendorDir, 'manifest.json');

function log(message) {
  process.stdout.write(`fetch-viewer: ${message}\n`);
}

function sha256File(path) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

function listFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/** True when vendor/ohif holds this exact version, unchanged since it was extracted. */
async function alreadyPresent() {
  if (!existsSync(manifestPath) || !existsSync(distDir)) return false;
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch {
    return false;
  }
  if (manifest.integrity !== OHIF_INTEGRITY || manifest.publicPath !== VIEWER_BASE || manifest.patchVersion !== PATCH_VERSION || typeof manifest.files !== 'object') return false;
  const onDisk = listFiles(distDir).map((p) => relative(distDir, p).split(sep).join('/'));
  if (onDisk.length !== Object.keys(manifest.files).length) return false;
  for (const name of onDisk) {
    const expected = manifest.files[name];
    if (!expected || (await sha256File(join(distDir, name))) !== expected) return false;
  }
  return true;
}

/** The tarball via npm: its cache, registry and proxy settings apply. */
function packTarball(into) {
  const npm = process.env.npm_execpath
    ? [process.execPath, [process.env.npm_execpath]]
    : [process.platform === 'win32' ? 'npm.cmd' : 'npm', []];
  const out = execFileSync(npm[0], [...npm[1], 'pack', `${OHIF_PACKAGE}@${OHIF_VERSION}`, '--json', '--pack-destination', into], {
    cwd: into,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const start = out.indexOf('[');
  const [info] = JSON.parse(out.slice(start));
  return join(into, info.filename);
}

async function verifyIntegrity(file) {
  const [algorithm, expected] = [OHIF_INTEGRITY.slice(0, OHIF_INTEGRITY.indexOf('-')), OHIF_INTEGRITY.slice(OHIF_INTEGRITY.indexOf('-') + 1)];
  const hash = createHash(algorithm);
  await new Promise((resolve, reject) => {
    createReadStream(file).on('data', (c) => hash.update(c)).on('error', reject).on('end', resolve);
  });
  const actual = hash.digest('base64');
  if (actual !== expected) {
    throw new Error(
      `${OHIF_PACKAGE}@${OHIF_VERSION}: the downloaded tarball has ${algorithm}-${actual}, expected ${OHIF_INTEGRITY}. ` +
        'Refusing to install it: check your npm registry setting (npm config get registry) and run `npm cache verify`, then `npm run fetch-viewer`.',
    );
  }
}

async function main() {
  if (process.env.TRESOR_SKIP_VIEWER === '1') {
    log('TRESOR_SKIP_VIEWER=1: not fetching the viewer (/viewer/ will say how to add it)');
    return;
  }
  if (await alreadyPresent()) {
    log(`${OHIF_PACKAGE}@${OHIF_VERSION} already in ${relative(root, vendorDir) || vendorDir}, verified`);
    return;
  }
  mkdirSync(dirname(vendorDir), { recursive: true });
  // Staged next to the target so the final rename stays on one filesystem.
  const work = mkdtempSync(join(dirname(vendorDir), '.ohif-staging-'));
  try {
    log(`fetching ${OHIF_PACKAGE}@${OHIF_VERSION} with npm pack`);
    const tarball = packTarball(work);
    await verifyIntegrity(tarball);
    log('integrity verified; extracting dist/');
    const staging = join(work, 'ohif');
    mkdirSync(staging);
    // Only package/dist/**; tar refuses absolute paths and '..' entries by default (preservePaths false).
    await tar.x({
      file: tarball,
      cwd: staging,
      strip: 1,
      filter: (path) => path === 'package/dist' || path.startsWith('package/dist/'),
    });
    const stagedDist = join(staging, 'dist');
    if (!existsSync(join(stagedDist, 'index.html'))) throw new Error('the tarball has no dist/index.html: is the pinned version right?');
    const files = {};
    let patched = 0;
    for (const path of listFiles(stagedDist)) {
      const name = relative(stagedDist, path).split(sep).join('/');
      const [from, to] = name.endsWith('.js') ? [PUBLIC_PATH_FROM, PUBLIC_PATH_TO] : name.endsWith('.css') ? [CSS_URL_FROM, CSS_URL_TO] : [];
      if (from) {
        const text = readFileSync(path, 'latin1');
        if (text.includes(from)) {
          writeFileSync(path, text.split(from).join(to), 'latin1');
          patched++;
        }
      }
      files[name] = await sha256File(path);
    }
    writeFileSync(
      join(staging, 'manifest.json'),
      JSON.stringify({ package: OHIF_PACKAGE, version: OHIF_VERSION, integrity: OHIF_INTEGRITY, publicPath: VIEWER_BASE, patchVersion: PATCH_VERSION, patched, files }, null, 1),
    );
    rmSync(vendorDir, { recursive: true, force: true });
    renameSync(staging, vendorDir);
    log(`${OHIF_PACKAGE}@${OHIF_VERSION} installed in ${relative(root, vendorDir) || vendorDir} (${Object.keys(files).length} files, public path set in ${patched})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`fetch-viewer: ${e instanceof Error ? e.message : String(e)}\n`);
  process.stderr.write('fetch-viewer: Tresor still runs without the viewer; /viewer/ says how to install it (npm run fetch-viewer).\n');
  process.exit(1);
});

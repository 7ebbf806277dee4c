// The version in package.json, for `tresor --version` and the console's system page.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The version in package.json, found upwards from this file (src/lib or dist/src/lib). */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tresor' && pkg.version) return pkg.version;
    } catch {
      /* not here */
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

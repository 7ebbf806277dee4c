// Looking at what a browser drew: a viewport canvas' screenshot as pixels, how many
// colours it has (a blank or one-colour canvas has very few) and how many pixels two
// screenshots differ in (a scrolled stack draws another slice).

import { PNG } from 'pngjs';

export function pixelsOf(png: Buffer): PNG {
  return PNG.sync.read(png);
}

export function distinctColours(img: PNG): number {
  const seen = new Set<number>();
  for (let i = 0; i < img.data.length; i += 4) seen.add(img.data.readUInt32BE(i) >>> 8);
  return seen.size;
}

export function differingPixels(a: PNG, b: PNG): number {
  let n = 0;
  for (let i = 0; i < Math.min(a.data.length, b.data.length); i += 4) if (a.data.readUInt32BE(i) !== b.data.readUInt32BE(i)) n++;
  return n;
}

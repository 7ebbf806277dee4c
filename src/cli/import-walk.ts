// What `tresor import` sends: the files under each PATH, found lazily. A folder is walked
// one directory at a time (fs.opendir reads entries in small batches), so a 100,000-file
// tree never becomes a list in memory; a DICOMDIR (PS3.10 §8, the index of a CD or USB
// stick) yields the files its directory records reference (Referenced File ID (0004,1500),
// PS3.3 F.3.2.2), relative to the DICOMDIR's own folder.

import { opendir, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from '../core/dicom/dcmjs.js';

/** A file to import, or a place that could not be read (reported as unreadable). */
export interface Found {
  path: string;
  /** Set when the place could not be read: why (an errno code or a sentence). */
  unreadable?: string;
}

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException)?.code ?? (e as Error)?.message ?? 'error';

/** True for a file named DICOMDIR (ISO 9660 media may add ";1" or use lower case). */
export const isDicomdirName = (p: string): boolean => /^dicomdir(;1)?$/i.test(path.basename(p));

/** The files under every PATH, in the order given; directories depth first. */
export async function* walk(paths: readonly string[]): AsyncGenerator<Found> {
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      yield { path: p, unreadable: errCode(e) };
      continue;
    }
    if (st.isDirectory()) yield* walkDir(p);
    else if (st.isFile() && isDicomdirName(p)) yield* dicomdirFiles(p);
    else if (st.isFile()) yield { path: p };
    else yield { path: p, unreadable: 'not a regular file' };
  }
}

async function* walkDir(dir: string): AsyncGenerator<Found> {
  let handle;
  try {
    handle = await opendir(dir, { bufferSize: 64 });
  } catch (e) {
    yield { path: dir, unreadable: errCode(e) };
    return;
  }
  try {
    for await (const entry of handle) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        yield* walkDir(p);
      } else if (entry.isFile()) {
        yield { path: p };
      } else if (entry.isSymbolicLink()) {
        // A link to a file is imported (a dangling one is unreadable); links to folders are
        // not followed, so a link loop cannot make the walk endless.
        let target;
        try {
          target = await stat(p);
        } catch (e) {
          yield { path: p, unreadable: `${errCode(e)} (symbolic link to nothing readable)` };
          continue;
        }
        if (target.isFile()) yield { path: p };
        else yield { path: p, unreadable: 'symbolic link to a folder: not followed (give the folder itself as a PATH)' };
      } else {
        yield { path: p, unreadable: 'not a regular file' };
      }
    }
  } catch (e) {
    // The folder went away or failed while being read: what was found so far stands.
    yield { path: dir, unreadable: errCode(e) };
  }
}

/** The Referenced File IDs of a DICOMDIR's directory records, as paths beside it. */
async function* dicomdirFiles(file: string): AsyncGenerator<Found> {
  let ids: string[][];
  try {
    ids = referencedFileIds(await readFile(file));
  } catch (e) {
    yield { path: file, unreadable: `DICOMDIR not readable (${errCode(e)}); give its folder instead to import every file in it` };
    return;
  }
  const root = path.dirname(file);
  for (const components of ids) {
    // File IDs are at most 8 components of A–Z 0–9 _ (PS3.10 §8.2, §8.5); anything
    // else (".." above all) could name a file outside the medium: refused.
    if (components.length === 0 || components.some((c) => !/^[A-Za-z0-9_]{1,16}$/.test(c))) {
      yield { path: path.join(root, ...components.map((c) => c.replace(/[^A-Za-z0-9_.-]/g, '_'))), unreadable: 'DICOMDIR names an invalid file ID' };
      continue;
    }
    yield { path: await onDisk(root, components) };
  }
}

/** The path of a file ID; media mounted with lower-case names are found too. */
async function onDisk(root: string, components: string[]): Promise<string> {
  const exact = path.join(root, ...components);
  try {
    await stat(exact);
    return exact;
  } catch {
    /* try without case */
  }
  let dir = root;
  for (const c of components) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return exact;
    }
    const match = names.find((n) => n.toUpperCase() === c.toUpperCase() || n.toUpperCase() === `${c.toUpperCase()};1`);
    if (!match) return exact;
    dir = path.join(dir, match);
  }
  return dir;
}

/** Every Referenced File ID (0004,1500) in the Directory Record Sequence (0004,1220). */
export function referencedFileIds(bytes: Buffer): string[][] {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const d = dcmjs.data.DicomMessage.readFile(ab, { ignoreErrors: false } as any);
  const records = d.dict?.['00041220']?.Value;
  if (!Array.isArray(records)) throw new Error('no Directory Record Sequence (0004,1220)');
  const out: string[][] = [];
  for (const r of records) {
    const v = r?.['00041500']?.Value;
    if (!Array.isArray(v) || v.length === 0) continue;
    // One CS value per component; some writers put "A\B" in a single string.
    out.push(v.flatMap((s: unknown) => String(s).split(/[\\/]/)).map((s: string) => s.trim()).filter(Boolean));
  }
  return out;
}

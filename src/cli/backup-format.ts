// The backup directory of `tresor backup` (read by `backup verify` and `restore`):
//   manifest.json          format, time, Tresor version, migrations, per part its sha256
//   db/<table>.jsonl       every row of every table, PostgreSQL's own JSON of it (db/backup.repo.ts)
//   blobs/<object key>     the stored bytes of every instance row (sha256 and size in the row)
//   tls/, keys/, audit-checkpoints.jsonl   the data directory's files of the same names
// Directories 0700, files 0600: the CA key and the token signing keys are in it.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const MANIFEST = 'manifest.json';
export const FORMAT = 1;

export interface Manifest {
  format: number;
  tresorVersion: string;
  time: string;
  backupId: string;
  migrations: string[];
  /** Tables in restore order (parents first) with their row count and file sha256. */
  tables: { name: string; rows: number; sha256: string }[];
  /** Files of the data directory (tls/…, keys/…, audit-checkpoints.jsonl): mode and sha256. */
  files: { name: string; mode: number; sha256: string }[];
  blobs: { count: number; bytes: number };
  /** Instances left out: their blob was deleted while the backup ran (a concurrent DELETE). */
  droppedInstances: string[];
}

/** A data-directory file name the backup may hold: no way out of its folder. */
export const isDataFileName = (n: string): boolean => /^(tls|keys)\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(n) || n === 'audit-checkpoints.jsonl';

export const tableFile = (dir: string, table: string): string => path.join(dir, 'db', `${table}.jsonl`);

export async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(file)) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

export async function readManifest(dir: string): Promise<Manifest> {
  const m = JSON.parse(await readFile(path.join(dir, MANIFEST), 'utf8')) as Manifest;
  if (m.format !== FORMAT) throw new Error(`backup format ${m.format} is not ${FORMAT}`);
  return m;
}

/** Lines of a JSON-lines file, streamed. */
export async function* jsonLines(file: string): AsyncGenerator<string> {
  const rl = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of rl) if (line) yield line;
}

/** object_key, sha256 and size of each instance row. */
export async function* instanceBlobs(dir: string): AsyncGenerator<{ key: string; sha256: string; size: number; sopInstanceUid: string }> {
  for await (const line of jsonLines(tableFile(dir, 'instances'))) {
    const r = JSON.parse(line) as { object_key: string; sha256: string; size: number; sop_instance_uid: string };
    yield { key: r.object_key, sha256: r.sha256, size: Number(r.size), sopInstanceUid: r.sop_instance_uid };
  }
}

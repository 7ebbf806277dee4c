// tresor backup DEST | backup verify DEST | restore SRC (format: backup-format.ts).
//
// backup (online, a global admin): GET /admin/backup gives one consistent snapshot of every
// table plus the data directory's secrets (core/backup.ts); then the blob of every instance
// row of that snapshot is fetched and checked against the row's sha256. Everything is
// written into a temporary sibling directory renamed to DEST at the end, so DEST is either
// a complete backup or absent. An instance whose blob is gone (deleted while the backup
// ran) is left out, and named in the manifest.
// verify: every part's sha256 against the manifest, every blob's against its row.
// restore (offline, holds the data-directory lock): into an empty place only.

import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import https from 'node:https';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { Command } from 'commander';
import { connectionError, openSession, withServerOptions, type ServerOptions, type Session } from './api-client.js';
import { FORMAT, MANIFEST, instanceBlobs, isDataFileName, jsonLines, readManifest, sha256File, tableFile, type Manifest } from './backup-format.js';
import { packageVersion } from '../lib/package-version.js';
import { emit, refused, usageError } from './output.js';
import { semaphore } from '../lib/semaphore.js';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

function get(s: Session, agent: https.Agent, p: string): Promise<import('node:http').IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(p, s.base), { method: 'GET', agent, ca: s.ca, headers: { authorization: `Bearer ${s.token()}` } }, resolve);
    req.setTimeout(120_000, () => req.destroy(Object.assign(new Error('no answer within 120 s'), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => reject(e.code ? connectionError(s.base, e) : e));
    req.end();
  });
}

async function errorText(res: import('node:http').IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  try {
    const e = JSON.parse(Buffer.concat(chunks).toString('utf8')).error;
    return `${e.message} (${res.statusCode} ${e.code})`;
  } catch {
    return `HTTP ${res.statusCode}`;
  }
}

async function writeLine(out: WriteStream, line: string): Promise<void> {
  if (!out.write(`${line}\n`)) await once(out, 'drain');
}

async function closeStream(out: WriteStream): Promise<void> {
  out.end();
  await once(out, 'finish');
}

/** Copies a blob from the server into `file`, returning its sha256 and size. */
async function fetchBlob(s: Session, agent: https.Agent, backupId: string, key: string, file: string): Promise<{ sha256: string; size: number } | 'gone'> {
  const res = await get(s, agent, `/admin/backup/blobs/${key}?backup=${backupId}`);
  if (res.statusCode === 404) {
    res.resume();
    return 'gone';
  }
  if (res.statusCode !== 200) throw refused(`blob ${key}: ${await errorText(res)}`);
  const h = createHash('sha256');
  let size = 0;
  await mkdir(path.dirname(file), { recursive: true, mode: DIR_MODE });
  await pipeline(
    res,
    new Transform({
      transform(c: Buffer, _e, cb) {
        h.update(c);
        size += c.length;
        cb(null, c);
      },
    }),
    createWriteStream(file, { mode: FILE_MODE, flags: 'wx' }),
  );
  return { sha256: h.digest('hex'), size };
}

async function takeBackup(opts: ServerOptions & { jobs: number }, dest: string): Promise<Manifest & { dir: string }> {
  const target = path.resolve(dest);
  if (await stat(target).then(() => true, () => false)) throw usageError(`${dest} exists: give a new directory (a backup is never written over another)`);
  const session = await openSession(opts);
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.partial-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { mode: DIR_MODE });
  await chmod(tmp, DIR_MODE);
  const agent = new https.Agent({ keepAlive: true, maxSockets: opts.jobs });
  try {
    await mkdir(path.join(tmp, 'db'), { mode: DIR_MODE });
    const res = await get(session, agent, '/admin/backup');
    if (res.statusCode !== 200) throw refused(`backup refused: ${await errorText(res)}`);
    let begin: { backupId: string; time: string; migrations: string[]; tables: string[] } | undefined;
    let end: { rows: Record<string, number>; files: number } | undefined;
    const rows: Record<string, number> = {};
    const files: Manifest['files'] = [];
    let out: WriteStream | undefined;
    let current = '';
    const rl = createInterface({ input: res, crlfDelay: Infinity });
    for await (const line of rl) {
      if (!line) continue;
      if (line.startsWith('{"kind":"row","table":')) {
        // The row is PostgreSQL's JSON text: kept byte for byte, never re-serialized.
        const at = line.indexOf(',"row":');
        const table = JSON.parse(line.slice('{"kind":"row","table":'.length, at)) as string;
        if (!begin?.tables.includes(table)) throw refused(`the server sent rows of an unannounced table ${table}`);
        if (table !== current) {
          if (out) await closeStream(out);
          current = table;
          out = createWriteStream(tableFile(tmp, table), { flags: 'wx', mode: FILE_MODE });
        }
        await writeLine(out!, line.slice(at + ',"row":'.length, -1));
        rows[table] = (rows[table] ?? 0) + 1;
        continue;
      }
      const m = JSON.parse(line);
      if (m.kind === 'begin') {
        if (m.format !== FORMAT) throw refused(`the server speaks backup format ${m.format}, this tresor ${FORMAT}: use the same version on both sides`);
        begin = m;
      } else if (m.kind === 'file') {
        if (!isDataFileName(m.name)) throw refused(`the server sent an unexpected file name ${JSON.stringify(m.name)}`);
        const f = path.join(tmp, m.name);
        await mkdir(path.dirname(f), { recursive: true, mode: DIR_MODE });
        const data = Buffer.from(m.data, 'base64');
        await writeFile(f, data, { mode: FILE_MODE, flag: 'wx' });
        files.push({ name: m.name, mode: m.mode, sha256: createHash('sha256').update(data).digest('hex') });
      } else if (m.kind === 'end') {
        end = m;
      }
    }
    if (out) await closeStream(out);
    if (!begin || !end) throw refused('the snapshot stream ended early (no end line): the server stopped or the connection broke; run tresor backup again');
    for (const t of begin.tables) {
      if ((rows[t] ?? 0) !== (end.rows[t] ?? 0)) throw refused(`table ${t}: ${rows[t] ?? 0} rows received, the server sent ${end.rows[t]}; run tresor backup again`);
      if (!rows[t]) await writeFile(tableFile(tmp, t), '', { mode: FILE_MODE, flag: 'wx' });
    }

    // The blobs of the snapshot's instance rows, checked as they arrive.
    const limit = semaphore(opts.jobs);
    const dropped: string[] = [];
    let count = 0;
    let bytes = 0;
    const pending = new Set<Promise<void>>();
    let failure: unknown;
    for await (const b of instanceBlobs(tmp)) {
      if (failure) break;
      const p = limit(async () => {
        const got = await fetchBlob(session, agent, begin!.backupId, b.key, path.join(tmp, 'blobs', b.key));
        if (got === 'gone') {
          dropped.push(b.sopInstanceUid);
          return;
        }
        if (got.sha256 !== b.sha256 || got.size !== b.size) throw refused(`blob ${b.key} does not match its row (sha256 or size): the store is damaged; investigate before trusting backups`);
        count++;
        bytes += got.size;
      })
        .catch((e) => void (failure ??= e))
        .finally(() => pending.delete(p));
      pending.add(p);
      if (pending.size >= opts.jobs * 4) await Promise.race(pending);
    }
    await Promise.all(pending);
    if (failure) throw failure;
    if (dropped.length) {
      // Deleted after the snapshot: leave their rows out, so every instance in the backup has
      // its blob; and the series and studies that the DELETE emptied, as it did (core/delete.ts).
      const gone = new Set(dropped);
      const touchedSeries = new Set<number>();
      const liveSeries = new Set<number>();
      rows.instances -= await filterTable(tmp, 'instances', (r) => {
        if (gone.has(r.sop_instance_uid)) {
          touchedSeries.add(r.series_id);
          return false;
        }
        liveSeries.add(r.series_id);
        return true;
      });
      const touchedStudies = new Set<number>();
      const liveStudies = new Set<number>();
      rows.series -= await filterTable(tmp, 'series', (r) => {
        if (touchedSeries.has(r.id) && !liveSeries.has(r.id)) {
          touchedStudies.add(r.study_id);
          return false;
        }
        liveStudies.add(r.study_id);
        return true;
      });
      rows.studies -= await filterTable(tmp, 'studies', (r) => !(touchedStudies.has(r.id) && !liveStudies.has(r.id)));
    }

    const tables: Manifest['tables'] = [];
    for (const t of begin.tables) tables.push({ name: t, rows: rows[t] ?? 0, sha256: (await sha256File(tableFile(tmp, t))).sha256 });
    const manifest: Manifest = {
      format: FORMAT,
      tresorVersion: packageVersion(),
      time: begin.time,
      backupId: begin.backupId,
      migrations: begin.migrations,
      tables,
      files,
      blobs: { count, bytes },
      droppedInstances: dropped,
    };
    await writeFile(path.join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: FILE_MODE, flag: 'wx' });
    await rename(tmp, target);
    return { ...manifest, dir: target };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    agent.destroy();
  }
}

/** Rewrites a table file keeping the rows `keep` accepts; returns how many were dropped. */
async function filterTable(dir: string, table: string, keep: (row: any) => boolean): Promise<number> {
  const src = tableFile(dir, table);
  const kept = `${src}.kept`;
  const w = createWriteStream(kept, { flags: 'wx', mode: FILE_MODE });
  let dropped = 0;
  for await (const line of jsonLines(src)) {
    if (keep(JSON.parse(line))) await writeLine(w, line);
    else dropped++;
  }
  await closeStream(w);
  await rename(kept, src);
  return dropped;
}

export interface VerifyResult {
  ok: boolean;
  problems: string[];
  manifest: Manifest;
}

/** Every part against the manifest and every blob against its row; also blobs no row names. */
export async function verifyBackup(dir: string): Promise<VerifyResult> {
  let manifest: Manifest;
  try {
    manifest = await readManifest(dir);
  } catch (e) {
    throw refused(`${dir}: no readable ${MANIFEST} (${(e as Error).message}); is it a tresor backup?`);
  }
  const problems: string[] = [];
  for (const t of manifest.tables) {
    const got = await sha256File(tableFile(dir, t.name)).catch(() => null);
    if (!got) problems.push(`db/${t.name}.jsonl is missing`);
    else if (got.sha256 !== t.sha256) problems.push(`db/${t.name}.jsonl does not match its sha256`);
  }
  for (const f of manifest.files) {
    const got = await sha256File(path.join(dir, f.name)).catch(() => null);
    if (!got) problems.push(`${f.name} is missing`);
    else if (got.sha256 !== f.sha256) problems.push(`${f.name} does not match its sha256`);
  }
  const named = new Set<string>();
  let count = 0;
  if (manifest.tables.some((t) => t.name === 'instances')) {
    for await (const b of instanceBlobs(dir)) {
      named.add(b.key);
      count++;
      const got = await sha256File(path.join(dir, 'blobs', b.key)).catch(() => null);
      if (!got) problems.push(`blob ${b.key} (instance ${b.sopInstanceUid}) is missing`);
      else if (got.sha256 !== b.sha256 || got.size !== b.size) problems.push(`blob ${b.key} (instance ${b.sopInstanceUid}) does not match its row's sha256 and size`);
    }
  }
  if (count !== manifest.blobs.count) problems.push(`${count} instance rows, the manifest says ${manifest.blobs.count} blobs`);
  // Blobs no row names: harmless to a restore, but a sign of tampering or a mixed-up directory.
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(d, e.name), r);
      else if (!named.has(r)) problems.push(`blobs/${r} is not named by any instance row`);
    }
  };
  await walk(path.join(dir, 'blobs'), '');
  return { ok: problems.length === 0, problems, manifest };
}

export function backupCommands(program: Command): void {
  const backup = withServerOptions(
    program
      .command('backup')
      .description(
        'back up the running server into a new directory DEST (a global admin): database snapshot, blobs, TLS files, token keys. ' +
          'DEST holds the CA key and token keys: keep it as secret as the data directory',
      )
      .argument('<dest>', 'a directory that does not exist yet')
      .option('--jobs <n>', 'blobs fetched at the same time, 1–32', (s: string) => {
        const n = Number(s);
        if (!/^\d{1,2}$/.test(s) || n < 1 || n > 32) throw usageError(`--jobs ${s}: expected 1–32`);
        return n;
      }, 4),
  ).action(async (dest: string, opts: ServerOptions & { jobs: number }) => {
    const m = await takeBackup(opts, dest);
    const rows = m.tables.reduce((a, t) => a + t.rows, 0);
    emit(opts.json, m, () => [
      `backup of ${m.time} in ${m.dir}: ${m.tables.length} tables, ${rows} rows, ${m.blobs.count} blobs (${(m.blobs.bytes / 1024 / 1024).toFixed(1)} MB), ${m.files.length} files`,
      ...(m.droppedInstances.length ? [`${m.droppedInstances.length} instance(s) deleted while the backup ran are not in it`] : []),
      `it holds the CA key and the token keys: keep ${m.dir} private (mode 0700)`,
    ]);
  });

  backup
    .command('verify')
    .description("check a backup: every part's sha256 against manifest.json, every blob's sha256 and size against its instance row (exit 1 when anything differs)")
    .argument('<dir>', 'the backup directory')
    .option('--json', 'print JSON for programs instead of text', false)
    .action(async (dir: string, opts: { json?: boolean }, cmd: Command) => {
      // `backup` has --json too, and Commander gives it to the parent when both know it.
      const json = Boolean(opts.json || cmd.optsWithGlobals().json);
      const r = await verifyBackup(dir);
      emit(json, { ok: r.ok, problems: r.problems, blobs: r.manifest.blobs.count, tables: r.manifest.tables.length }, () =>
        r.ok ? `backup ${dir} is intact: ${r.manifest.tables.length} tables, ${r.manifest.blobs.count} blobs verified` : [`backup ${dir} is DAMAGED:`, ...r.problems.map((p) => `  ${p}`)],
      );
      if (!r.ok) process.exitCode = 1;
    });
}

/** Streams a table's JSON lines in batches of `n`. */
export async function* batches(file: string, n = 500): AsyncGenerator<string[]> {
  let batch: string[] = [];
  for await (const line of jsonLines(file)) {
    batch.push(line);
    if (batch.length >= n) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

// tresor restore SRC — offline, into an empty place: the data directory given by the same
// settings as `serve` (--data-dir, or DATABASE_URL and S3_*), holding its lock. The backup
// is verified first (backup.ts verifyBackup); then the data directory's files (TLS, token
// keys, audit checkpoints) with their modes, the rows in one transaction (parents first,
// every column converted back by PostgreSQL, db/backup.repo.ts), the sequences, and the
// blobs, each checked against its row again as the store takes it. Tokens signed before
// the backup keep verifying (same keys), devices keep their certificates (same CA), and
// the audit chain continues with one `admin.restore` event.

import { createReadStream } from 'node:fs';
import { chmod, mkdir, readdir, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { batches, verifyBackup } from './backup.js';
import { instanceBlobs, tableFile } from './backup-format.js';
import { operator, withDataDirLock } from './offline.js';
import { emit, refused } from './output.js';
import { configFrom, withSettings } from './settings.js';

const SYSTEM = { kind: 'system', id: 0, name: 'tresor-cli' } as const;

const nonEmptyDir = async (d: string): Promise<boolean> => (await readdir(d).catch(() => [])).length > 0;

export function restoreCommand(program: Command): void {
  withSettings(
    program
      .command('restore')
      .description(
        'restore a backup made by tresor backup into an empty data directory (and empty database and bucket with DATABASE_URL and S3_*); ' +
          'offline: takes the data directory lock. The backup is verified first',
      )
      .argument('<src>', 'the backup directory')
      .option('--json', 'print JSON for programs instead of text', false),
  ).action(async (src: string, opts) => {
    const cfg = configFrom(opts);
    const v = await verifyBackup(src);
    if (!v.ok) throw refused(`backup ${src} is damaged (${v.problems[0]}${v.problems.length > 1 ? `, and ${v.problems.length - 1} more` : ''}): run tresor backup verify ${src}`);
    const m = v.manifest;
    await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
    await withDataDirLock(cfg, 'restore', async () => {
      // An empty place: nothing of another Tresor may be overwritten or mixed in.
      for (const d of ['tls', 'keys', 'blobs', ...(cfg.databaseUrl ? [] : ['pgdata'])]) {
        if (await nonEmptyDir(path.join(cfg.dataDir, d))) throw refused(`${path.join(cfg.dataDir, d)} is not empty: restore goes into an empty data directory only`);
      }
      const { openDb, migrate } = await import('../db/knex.js');
      const { restoreWriter } = await import('../db/backup.repo.js');
      const { createBlobStore } = await import('../storage/create-blob-store.js');
      const db = await openDb({ url: cfg.databaseUrl, embeddedDir: cfg.databaseUrl ? undefined : path.join(cfg.dataDir, 'pgdata') });
      let blobs;
      try {
        await migrate(db);
        const w = restoreWriter(db);
        const have = await w.migrations();
        if (JSON.stringify(have) !== JSON.stringify(m.migrations)) {
          throw refused(`the backup was taken at database migrations ${m.migrations.join(', ')}; this tresor has ${have.join(', ')}: restore with tresor ${m.tresorVersion}, then upgrade`);
        }
        const busy = await w.nonEmptyTables();
        if (busy.length) throw refused(`the database already holds rows (${busy.join(', ')}): restore into an empty database only`);
        blobs = await createBlobStore(cfg);
        for await (const _ of blobs.list('objects/')) throw refused('the blob store already holds objects: restore into an empty bucket only');

        // Files first (0600: the CA key and token keys among them), the database and blobs next.
        for (const f of m.files) {
          const to = path.join(cfg.dataDir, f.name);
          await mkdir(path.dirname(to), { recursive: true, mode: 0o700 });
          await writeFile(to, await readFile(path.join(src, f.name)), { mode: 0o600, flag: 'wx' });
          await chmod(to, 0o600);
        }
        await db.transaction(async (trx) => {
          const tw = restoreWriter(trx);
          for (const t of m.tables) for await (const b of batches(tableFile(src, t.name))) await tw.insert(t.name, b);
          await tw.resetSequences();
        });
        // The checkpoint file was copied after the snapshot: checkpoints over audit rows written
        // later name rows the backup does not hold and would read as truncation. Each line is
        // signed on its own, so dropping the later ones leaves the others valid.
        const cpFile = path.join(cfg.dataDir, 'audit-checkpoints.jsonl');
        if (m.files.some((f) => f.name === 'audit-checkpoints.jsonl')) {
          const last = await restoreWriter(db).lastAuditId();
          const kept = (await readFile(cpFile, 'utf8')).split('\n').filter((line) => {
            if (!line.trim()) return false;
            try {
              return (JSON.parse(line) as { seq?: number }).seq! <= last;
            } catch {
              return true; // not ours to judge: audit verify reports a damaged line
            }
          });
          await writeFile(cpFile, kept.map((l) => `${l}\n`).join(''), { mode: 0o600 });
        }
        let count = 0;
        for await (const b of instanceBlobs(src)) {
          const put = await blobs.put(b.key, createReadStream(path.join(src, 'blobs', b.key)));
          if (put.sha256 !== b.sha256) throw refused(`blob ${b.key} changed while being restored: run tresor backup verify ${src}`);
          count++;
        }
        const { createAuditRepo } = await import('../db/audit.repo.js');
        const { createAuditLog } = await import('../core/audit.js');
        // The restored trail goes on under the restored audit key (or the master key's), so the row is MAC'd like every other.
        const { auditKeyFor } = await import('../pki/audit-key.js');
        const { auditCheckpointFile } = await import('../storage/audit-checkpoint-file.js');
        const key = await auditKeyFor(cfg, { create: true });
        const auditLog = createAuditLog(createAuditRepo(db), undefined, { key, checkpoints: auditCheckpointFile(cfg.dataDir), checkpointEveryMs: 0 });
        await auditLog.record({
          action: 'admin.restore',
          outcome: 'success',
          principal: SYSTEM,
          details: { via: 'cli', operator: operator(), backupId: m.backupId, backupTime: m.time },
        });
        await auditLog.close(); // a signed checkpoint naming the restore row
        const rows = m.tables.reduce((a, t) => a + t.rows, 0);
        emit(opts.json, { restored: true, time: m.time, rows, blobs: count, files: m.files.length }, () => [
          `restored the backup of ${m.time}: ${rows} rows, ${count} blobs, ${m.files.length} files`,
          'start tresor serve with the same settings',
        ]);
      } finally {
        await blobs?.close();
        await db.destroy();
      }
    });
  });
}

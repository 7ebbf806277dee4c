// Backup of a running Tresor (`tresor backup`): a global administrator reads, through the
// admin API, one consistent snapshot of every database table (one REPEATABLE READ
// transaction, db/backup.repo.ts), the data directory's secrets (TLS files, token keys,
// audit checkpoints), then the blob of every instance row of that snapshot. An instance
// stored after the snapshot is not in it (neither row nor blob); an instance deleted after
// it loses its blob (core/delete.ts deletes rows, then blobs) and the client leaves it out.
//
// The snapshot hands out secrets (the CA key, the token signing keys) and every image, so
// it is a global administrator's act (core/access.ts), audited strictly before anything is
// read (no audit, no access). The blob reads that follow are covered by that event: each
// names the backup id the snapshot issued to the same principal, for a bounded time.

import { randomUUID } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { canAdministerSystem } from './access.js';
import type { AuditLog } from './audit.js';
import { forbidden, notFound } from './errors.js';
import type { BlobStore } from './ports/blob-store.js';
import { isValidObjectKey } from './ports/object-keys.js';
import type { Principal } from './principal.js';

/** The backup format; a restore refuses any other. */
export const BACKUP_FORMAT = 1;

/** The database as one consistent snapshot (implemented in db/backup.repo.ts). */
export interface SnapshotReader {
  migrations(): Promise<string[]>;
  tables(): Promise<string[]>;
  rows(table: string): AsyncGenerator<string[]>;
}

/** Files of the data directory a restore needs: relative paths (subdirectory → every file in it). */
export const BACKUP_FILES = ['tls', 'keys', 'audit-checkpoints.jsonl'] as const;

/** How long the blob reads of one backup are allowed after its snapshot. */
const SESSION_MS = 24 * 3600 * 1000;

export interface BackupDeps {
  snapshot<T>(fn: (s: SnapshotReader) => Promise<T>): Promise<T>;
  blobs: Pick<BlobStore, 'get'>;
  audit: Pick<AuditLog, 'record'>;
  dataDir: string;
  now?: () => Date;
}

export interface BackupService {
  /** Writes the snapshot as JSON lines through `write` (which waits for room). */
  snapshot(p: Principal, write: (line: string) => Promise<void>): Promise<void>;
  /** One blob of a backup begun by the same principal. */
  blob(p: Principal, backupId: string, key: string): Promise<Readable>;
}

async function* dataFiles(dataDir: string): AsyncGenerator<{ name: string; mode: number; data: Buffer }> {
  for (const entry of BACKUP_FILES) {
    const full = path.join(dataDir, entry);
    let st;
    try {
      st = await stat(full);
    } catch {
      continue; // not there (own PKI, or no checkpoints yet)
    }
    const names = st.isDirectory() ? (await readdir(full)).sort().map((n) => path.join(entry, n)) : [entry];
    for (const name of names) {
      const f = path.join(dataDir, name);
      const s = await stat(f);
      if (!s.isFile()) continue;
      yield { name: name.split(path.sep).join('/'), mode: s.mode & 0o777, data: await readFile(f) };
    }
  }
}

export function createBackupService(d: BackupDeps): BackupService {
  const now = d.now ?? (() => new Date());
  const sessions = new Map<string, { kind: string; id: number; until: number }>();

  return {
    async snapshot(p, write) {
      if (!canAdministerSystem(p)) throw forbidden('global-admin-required', 'only a global administrator may take a backup');
      const backupId = randomUUID();
      const t = now();
      for (const [k, s] of sessions) if (s.until < t.getTime()) sessions.delete(k);
      sessions.set(backupId, { kind: p.kind, id: p.id, until: t.getTime() + SESSION_MS });
      await d.audit.record({ action: 'admin.backup', outcome: 'success', principal: p, source: p.source, details: { backupId } });
      const counts: Record<string, number> = {};
      await d.snapshot(async (s) => {
        const tables = await s.tables();
        await write(JSON.stringify({ kind: 'begin', format: BACKUP_FORMAT, backupId, time: t.toISOString(), migrations: await s.migrations(), tables }));
        for (const table of tables) {
          counts[table] = 0;
          const name = JSON.stringify(table);
          for await (const batch of s.rows(table)) {
            counts[table] += batch.length;
            // Rows are PostgreSQL's own JSON text, passed through unparsed.
            await write(batch.map((row) => `{"kind":"row","table":${name},"row":${row}}`).join('\n'));
          }
        }
      });
      let files = 0;
      for await (const f of dataFiles(d.dataDir)) {
        files++;
        await write(JSON.stringify({ kind: 'file', name: f.name, mode: f.mode, data: f.data.toString('base64') }));
      }
      await write(JSON.stringify({ kind: 'end', rows: counts, files }));
    },

    async blob(p, backupId, key) {
      if (!canAdministerSystem(p)) throw forbidden('global-admin-required', 'only a global administrator may take a backup');
      const s = sessions.get(backupId);
      if (!s || s.kind !== p.kind || s.id !== p.id || s.until < now().getTime()) throw forbidden('forbidden', 'no backup of yours is under way with this id; start one with GET /admin/backup');
      if (!isValidObjectKey(key)) throw notFound();
      return d.blobs.get(key);
    },
  };
}

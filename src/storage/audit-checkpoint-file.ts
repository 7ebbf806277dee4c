// The audit checkpoint store (core/ports/audit-key.ts) as a file outside the database:
// <data>/audit-checkpoints.jsonl, one signed checkpoint per line, appended and fsynced
// (mode 0600). Another copy can go to a syslog sink: deps.ts logs each checkpoint.

import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AuditCheckpointStore } from '../core/ports/audit-key.js';

export const AUDIT_CHECKPOINT_FILE = 'audit-checkpoints.jsonl';

export function auditCheckpointFile(dataDir: string): AuditCheckpointStore {
  const file = path.join(dataDir, AUDIT_CHECKPOINT_FILE);
  return {
    location: file,
    async append(line) {
      const fh = await open(file, 'a', 0o600);
      try {
        await fh.chmod(0o600);
        await fh.appendFile(`${line}\n`, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
    async readAll() {
      try {
        return (await readFile(file, 'utf8')).split('\n').filter((l) => l.trim() !== '');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
    },
  };
}

// Sweeps blobs the journal (migrations/003-blob-journal.ts) still names after a
// crash or a failed cleanup: uploads whose instance row was never committed, and
// blobs of deleted instances that could not be removed at the time. Ingest entries
// are swept only when older than `minAgeMs`, so an upload still in flight (in this
// or another server process) is never touched; delete entries at once. A blob that
// a committed instance row still references is never deleted (defence in depth).

import type { BlobStore } from './ports/blob-store.js';

export interface JournalEntry {
  objectKey: string;
  reason: 'ingest' | 'delete';
}

export interface BlobJournalRepo {
  /** Entries due for sweeping: delete entries, and ingest entries older than `minAgeMs`. */
  due(minAgeMs: number, limit: number): Promise<JournalEntry[]>;
  /** Whether an instance row references the key. */
  referenced(objectKey: string): Promise<boolean>;
  remove(objectKey: string): Promise<void>;
}

export interface SweepResult {
  deleted: number;
  kept: number;
  failed: number;
}

export async function sweepBlobJournal(
  d: { repo: BlobJournalRepo; blobs: Pick<BlobStore, 'delete'>; onError?: (err: unknown, key: string) => void },
  opts: { minAgeMs?: number; limit?: number } = {},
): Promise<SweepResult> {
  const result: SweepResult = { deleted: 0, kept: 0, failed: 0 };
  for (const e of await d.repo.due(opts.minAgeMs ?? 3600_000, opts.limit ?? 10_000)) {
    try {
      if (await d.repo.referenced(e.objectKey)) result.kept++;
      else {
        await d.blobs.delete(e.objectKey);
        result.deleted++;
      }
      await d.repo.remove(e.objectKey);
    } catch (err) {
      result.failed++; // stays in the journal for the next sweep
      d.onError?.(err, e.objectKey);
    }
  }
  return result;
}

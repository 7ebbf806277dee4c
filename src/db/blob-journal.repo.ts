import type { BlobJournalRepo, JournalEntry } from '../core/blob-journal.js';
import type { Db } from './knex.js';

export function createBlobJournalRepo(db: Db): BlobJournalRepo {
  return {
    async due(minAgeMs, limit) {
      const cutoff = new Date(Date.now() - minAgeMs).toISOString();
      const rows = await db('blob_journal')
        .select('object_key', 'reason')
        .where((q) => q.where('reason', 'delete').orWhere('created_at', '<=', cutoff))
        .orderBy('created_at')
        .limit(limit);
      return rows.map((r: any): JournalEntry => ({ objectKey: r.object_key, reason: r.reason }));
    },
    async referenced(objectKey) {
      return (await db('instances').select('id').where({ object_key: objectKey }).first()) !== undefined;
    },
    async remove(objectKey) {
      await db('blob_journal').where({ object_key: objectKey }).del();
    },
  };
}

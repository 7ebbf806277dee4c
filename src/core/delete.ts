// DELETE of a study, series or instance (DICOMweb; PS3.18 has no delete
// transaction, so this is Tresor's own, in the style of dcm4chee and Orthanc).
//
// Authorization goes through access.ts like everything else: what the principal
// cannot read does not exist (not-found, rule 3); what it can read but not delete
// is forbidden (only department admins and global admins delete).
//
// Order: rows first, in one transaction, then blobs. After the commit nothing
// references the blobs, so a reader can never find a row whose bytes are gone; a
// crash or a store error between the two steps leaves unreferenced blobs, which no
// one can reach; the same transaction names them in the blob journal, and the
// sweeper (core/blob-journal.ts) removes them at the next start or sweep. The
// opposite order would leave rows pointing at missing bytes — visible breakage
// that every retrieve of the study would hit.

import { assertCan, can } from './access.js';
import { auditedRun, type AuditDoor, type AuditLog } from './audit.js';
import { invalid, notFound } from './errors.js';
import { isValidUid } from './dicom/uids.js';
import type { Principal } from './principal.js';
import type { BlobStore } from './ports/blob-store.js';

export interface DeleteRequest {
  studyUid: string;
  seriesUid?: string;
  sopInstanceUid?: string;
}

export interface DeleteResult {
  studyUid: string;
  instances: number;
  /** Blobs that could not be removed (unreferenced; logged by onCleanupError). */
  blobFailures: number;
}

export interface DeleteRepo {
  /** The department of the study holding the target, or null when the target does not exist. */
  locate(req: DeleteRequest): Promise<{ departmentId: number } | null>;
  /**
   * One transaction: deletes the instance rows of the target, then the series and
   * study rows left without instances, and journals their blobs; returns the object
   * keys of the deleted instances.
   */
  deleteRows(req: DeleteRequest): Promise<string[]>;
  /** Drops the journal entry deleteRows wrote for a blob, once the blob is gone. */
  forget(key: string): Promise<void>;
}

export interface DeletionService {
  /** One `delete` row (PS3.15 A.5.3.8), written here; `door` says where the request came from. */
  delete(p: Principal, req: DeleteRequest, door?: AuditDoor): Promise<DeleteResult>;
}

export function createDeletionService(d: {
  repo: DeleteRepo;
  blobs: Pick<BlobStore, 'delete'>;
  audit: Pick<AuditLog, 'record' | 'recordAfter'>;
  onCleanupError?: (err: unknown, key: string) => void;
}): DeletionService {
  return {
    async delete(p, req, door = { via: 'dicomweb' }) {
      for (const u of [req.studyUid, req.seriesUid, req.sopInstanceUid]) {
        if (u !== undefined && !isValidUid(u)) throw invalid('invalid-uid', 'A UID in the request is not valid.');
      }
      if (req.sopInstanceUid !== undefined && req.seriesUid === undefined) throw invalid('bad-delete', 'An instance is named by its series too.');
      const target = { level: req.sopInstanceUid ? 'IMAGE' : req.seriesUid ? 'SERIES' : 'STUDY', ...(req.seriesUid ? { seriesUid: req.seriesUid } : {}), ...(req.sopInstanceUid ? { sopInstanceUid: req.sopInstanceUid } : {}) };
      const base = { action: 'delete', principal: p, source: p.source, studyUids: [req.studyUid], details: { via: door.via, ...door.details, ...target } };
      return auditedRun(d.audit, base, async (note) => {
        const where = await d.repo.locate(req);
        // Out of read scope is indistinguishable from absent (rule 3).
        if (!where || !can(p, 'read', where.departmentId)) throw notFound();
        assertCan(p, 'delete', where.departmentId);
        const keys = await d.repo.deleteRows(req);
        if (keys.length === 0) throw notFound(); // deleted concurrently
        let blobFailures = 0;
        for (const key of keys) {
          try {
            await d.blobs.delete(key);
            await d.repo.forget(key);
          } catch (e) {
            blobFailures++;
            d.onCleanupError?.(e, key);
          }
        }
        note.details = { instances: keys.length, ...(blobFailures ? { blobFailures } : {}) };
        return { studyUid: req.studyUid, instances: keys.length, blobFailures };
      });
    },
  };
}

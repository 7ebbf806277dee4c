// C-GET, C-MOVE, WADO-RS and WADO-URI: from UIDs to the stored instances the
// principal may read, and a stream of their stored bytes. Everything outside
// scope(principal, 'read') is simply absent: not-found, never forbidden (rule 3).

import type { Readable } from 'node:stream';
import { scope, type Scope } from './access.js';
import { invalid, notFound } from './errors.js';
import type { DicomJson } from './dicom/json.js';
import { isValidUid } from './dicom/uids.js';
import type { Principal } from './principal.js';
import type { QueryLevel } from './query.js';
import type { BlobStore } from './ports/blob-store.js';

export interface RetrieveRequest {
  level: QueryLevel;
  patientId?: string;
  studyUids?: string[];
  seriesUids?: string[];
  sopInstanceUids?: string[];
}

export interface StoredInstance {
  studyUid: string;
  seriesUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  size: number;
  sha256: string;
  departmentId: number;
  instanceNumber: number | null;
  numberOfFrames: number | null;
  /** DICOM JSON without bulk data; empty unless listed `withMetadata`. */
  metadata: DicomJson;
  /** Server-generated blob key; never shown to callers. */
  objectKey: string;
}

export interface RetrieveRepo {
  /** Instances matching `req` within `scope`, ordered by study, series, instance number. */
  list(s: Scope, req: RetrieveRequest, opts: { withMetadata: boolean; limit: number }): Promise<StoredInstance[]>;
}

export interface RetrieveService {
  /**
   * Throws not-found when nothing in scope matches. `metadata` is loaded only with
   * `withMetadata` (a C-GET of a large study must not pull every instance's JSON).
   */
  list(p: Principal, req: RetrieveRequest, opts?: { withMetadata?: boolean }): Promise<StoredInstance[]>;
  open(i: StoredInstance): Promise<Readable>;
}

/** Most instances one retrieve may name (a study of 100,000 images is already unusual). */
export const MAX_RETRIEVE_INSTANCES = 100_000;
const MAX_UIDS = 1000;

export function createRetrieveService(d: { repo: RetrieveRepo; blobs: BlobStore }): RetrieveService {
  return {
    async list(p, req, opts) {
      for (const list of [req.studyUids, req.seriesUids, req.sopInstanceUids]) {
        if (!list) continue;
        if (list.length > MAX_UIDS) throw invalid('too-many-uids', `At most ${MAX_UIDS} UIDs per request.`);
        for (const u of list) if (!isValidUid(u)) throw invalid('invalid-uid', 'A UID in the request is not valid.');
      }
      if (!req.patientId && !req.studyUids?.length && !req.seriesUids?.length && !req.sopInstanceUids?.length) {
        throw invalid('no-keys', 'A retrieve needs a patient ID or UIDs.');
      }
      const s = scope(p, 'read');
      if (!s.all && s.departmentIds.length === 0) throw notFound();
      const rows = await d.repo.list(s, req, { withMetadata: opts?.withMetadata ?? false, limit: MAX_RETRIEVE_INSTANCES });
      if (rows.length === 0) throw notFound();
      return rows;
    },
    open: (i) => d.blobs.get(i.objectKey),
  };
}

// C-GET, C-MOVE, WADO-RS and WADO-URI: from UIDs to the stored instances the
// principal may read, and a stream of their stored bytes. Everything outside
// scope(principal, 'read') is simply absent: not-found, never forbidden (rule 3).

import type { Readable } from 'node:stream';
import { isEmptyScope, scope, type Scope } from './access.js';
import { auditedRun, type AuditDoor, type AuditLog } from './audit.js';
import { invalid, notFound } from './errors.js';
import type { DicomJson } from './dicom/json.js';
import { isValidUid } from './dicom/uids.js';
import type { Principal } from './principal.js';
import type { QueryLevel } from './query.js';
import type { BlobStore, GetOptions } from './ports/blob-store.js';

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
  /**
   * DICOM JSON without bulk data; empty unless listed `withMetadata`; only the Image
   * Pixel size attributes and Pixel Data's presence when listed `withPixelShape`.
   */
  metadata: DicomJson;
  /**
   * With `withMetadataText`: the metadata as stored PS3.18 F.2 text with relative bulk data
   * markers (core/dicom/metadata-text.ts); absent for a row stored without it, whose
   * `metadata` is then loaded instead.
   */
  metadataText?: string;
  /** Server-generated blob key; never shown to callers. */
  objectKey: string;
}

export interface RetrieveRepo {
  /** Instances matching `req` within `scope`, ordered by study, series, instance number. */
  list(s: Scope, req: RetrieveRequest, opts: { withMetadata: boolean; withMetadataText?: boolean; withPixelShape?: boolean; limit: number }): Promise<StoredInstance[]>;
}

/**
 * `withPixelShape`: the few attributes a decoder's promise is computed from
 * (pixel-bounds.ts shapeOfMetadata), without the rest of each instance's JSON: a
 * transcoding retrieve checks every instance's promise before the first byte is sent.
 */
export interface ListOptions {
  withMetadata?: boolean;
  /** The stored metadata text (WADO-RS /metadata), or the JSON for rows without it. */
  withMetadataText?: boolean;
  withPixelShape?: boolean;
}

/** One retrieve request as the door runs it; whatever it lists goes into the request's one row. */
export interface Retrieval {
  list(req: RetrieveRequest, opts?: ListOptions): Promise<StoredInstance[]>;
  open(i: StoredInstance, opts?: GetOptions): Promise<Readable>;
  /** Door-specific counts and detail (instances sent/failed, frames, resource…); merged into the row. */
  note(details: Record<string, unknown>): void;
  /** The request answered without throwing but did not deliver (406, sub-operations failed). */
  failed(reason?: string, outcome?: 'failure' | 'denied'): void;
}

export interface RetrieveService {
  /**
   * One audited retrieve request (PS3.15 A.5.3.10): `fn` lists and streams through the
   * Retrieval; one `retrieve` row is written when it returns or throws. WADO-RS,
   * WADO-URI, rendered, C-GET and C-MOVE all go through here.
   */
  run<T>(p: Principal, door: AuditDoor, fn: (r: Retrieval) => Promise<T>): Promise<T>;
  /**
   * Throws not-found when nothing in scope matches. `metadata` is loaded only with
   * `withMetadata` (a C-GET of a large study must not pull every instance's JSON).
   */
  list(p: Principal, req: RetrieveRequest, opts?: ListOptions): Promise<StoredInstance[]>;
  open(i: StoredInstance, opts?: GetOptions): Promise<Readable>;
}
// (`list` and `open` alone are unaudited: for `run`, for core tests, and for the C-MOVE
// destination's scope check, which is not a retrieve by the destination.)

/** Most instances one retrieve may name (a study of 100,000 images is already unusual). */
export const MAX_RETRIEVE_INSTANCES = 100_000;
const MAX_UIDS = 1000;

export function createRetrieveService(d: { repo: RetrieveRepo; blobs: BlobStore; audit: Pick<AuditLog, 'record' | 'recordAfter'> }): RetrieveService {
  const service: RetrieveService = {
    run(p, door, fn) {
      const base = { action: 'retrieve', principal: p, source: door.source ?? p.source, details: { via: door.via, ...door.details } };
      return auditedRun(d.audit, base, (note) => {
        const instances = new Set<string>();
        return fn({
          async list(req, opts) {
            const rows = await service.list(p, req, opts);
            for (const r of rows) {
              note.studyUids.add(r.studyUid);
              instances.add(r.sopInstanceUid);
            }
            note.details.matched = instances.size;
            return rows;
          },
          open: (i, o) => service.open(i, o),
          note(details) {
            Object.assign(note.details, details);
          },
          failed(reason, outcome = 'failure') {
            note.outcome = outcome;
            if (reason) note.details.reason = reason;
          },
        });
      });
    },
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
      if (isEmptyScope(s)) throw notFound();
      const rows = await d.repo.list(s, req, { withMetadata: opts?.withMetadata ?? false, withMetadataText: opts?.withMetadataText ?? false, withPixelShape: opts?.withPixelShape ?? false, limit: MAX_RETRIEVE_INSTANCES });
      if (rows.length === 0) throw notFound();
      return rows;
    },
    open: (i, o) => d.blobs.get(i.objectKey, o),
  };
  return service;
}

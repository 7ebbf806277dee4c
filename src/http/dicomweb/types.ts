// What the DICOMweb plugin needs from the rest of Tresor: narrow, structural
// interfaces, so the routes depend on the core's contracts and not on how the
// composition root (deps.ts) builds them.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DeletionService } from '../../core/delete.js';
import type { IngestService } from '../../core/ingest.js';
import type { QueryLevel, QueryService } from '../../core/query.js';
import type { RetrieveService } from '../../core/retrieve.js';
import type { PixelCodec } from '../../core/dicom/pixels/pixel-codec.js';

// The contracts are the core's own; the "Like" types are the parts of each
// service the routes use.
export type QidoLevel = QueryLevel;
// Each audits itself in the core (ARCHITECTURE.md rule 8): the routes write no rows.
export type QueryLike = Pick<QueryService, 'search'>;
export type IngestLike = Pick<IngestService, 'openTransfer'>;
export type RetrieveLike = Pick<RetrieveService, 'run'>;
export type DeletionLike = Pick<DeletionService, 'delete'>;
/** Decoding under limits, out of process (core/dicom/pixels/pixel-codec.ts). */
export type PixelsLike = Pick<PixelCodec, 'transcodeObject' | 'render' | 'admits'>;

export interface DicomwebConfig {
  /** Public base URL (https://host[:port][/path], no trailing slash); links are built from it, never from Host. */
  publicUrl?: string;
  limits: { maxRequestBytes: number; maxParts: number; maxObjectBytes: number };
}

export interface DicomwebOptions {
  ingest: IngestLike;
  query: QueryLike;
  retrieve: RetrieveLike;
  deletion: DeletionLike;
  pixels: PixelsLike;
  config: DicomwebConfig;
  /**
   * Sets `request.principal` or throws 401. Leave it out under buildApp: its global
   * onRequest hook (http/auth.ts) has authenticated every route before ours run.
   */
  authenticate?: (request: FastifyRequest, reply: FastifyReply) => Promise<void> | void;
  /** STOW-RS `department=<name>`: the id of a department by name, or null. Numeric ids work without it. */
  departmentByName?: (name: string) => Promise<number | null>;
  /** STOW-RS: a request that sends no bytes for this long is answered 408 (default 30 s). */
  stowIdleTimeoutMs?: number;
}

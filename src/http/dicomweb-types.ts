// What the DICOMweb plugin needs from the rest of Tresor: narrow, structural
// interfaces, so the routes depend on the core's contracts and not on how the
// composition root (deps.ts) builds them.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditEvent } from '../core/audit.js';
import type { IngestOptions, IngestResult } from '../core/ingest.js';
import type { DicomJson } from '../core/dicom/json.js';
import type { Principal } from '../core/principal.js';
import type { RetrieveRequest, StoredInstance } from '../core/retrieve.js';
import type { DeleteRequest, DeleteResult } from '../core/delete.js';
import type { Readable } from 'node:stream';

export type QidoLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

export interface QueryLike {
  find(
    p: Principal,
    req: {
      level: QidoLevel;
      identifier: DicomJson;
      fuzzy?: boolean;
      includeAll?: boolean;
      includeFields?: string[];
      limit?: number;
      offset?: number;
    },
  ): Promise<{ matches: DicomJson[]; truncated: boolean }>;
}

export interface IngestLike {
  ingestStream(p: Principal, body: Readable, opts: IngestOptions): Promise<IngestResult>;
}

export interface RetrieveLike {
  list(p: Principal, req: RetrieveRequest, opts?: { withMetadata?: boolean }): Promise<StoredInstance[]>;
  open(i: StoredInstance): Promise<Readable>;
}

export interface DeletionLike {
  delete(p: Principal, req: DeleteRequest): Promise<DeleteResult>;
}

export interface AuditLike {
  record(e: AuditEvent): Promise<void>;
}

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
  audit: AuditLike;
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

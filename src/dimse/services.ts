// What the DIMSE front door needs from the rest of Tresor. The core service shapes
// mirror src/core/{ingest,query,retrieve}.ts (structural types, so the real
// services fit without this module importing their implementations).

import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { AuditEvent } from '../core/audit.js';
import type { DicomJson } from '../core/dicom/json.js';
import type { Principal } from '../core/principal.js';
import type { DimseAuthenticator } from './association.js';

export type { DicomJson };

export interface IngestOptions {
  departmentId?: number;
  source?: string;
  via: 'dimse' | 'dicomweb';
}
export interface IngestResult {
  outcome: 'stored' | 'duplicate';
  sopInstanceUid: string;
  sopClassUid: string;
  studyUid: string;
  seriesUid: string;
  transferSyntaxUid: string;
  warnings: string[];
}
export interface IngestPort {
  /** The caller deletes the file afterwards. */
  ingestFile(p: Principal, part10Path: string, opts: IngestOptions): Promise<IngestResult>;
}

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';
export interface QueryRequest {
  level: QueryLevel;
  identifier: DicomJson;
  fuzzy?: boolean;
  includeAll?: boolean;
  includeFields?: string[];
  limit?: number;
  offset?: number;
}
export interface QueryResult {
  matches: DicomJson[];
  truncated: boolean;
}
export interface QueryPort {
  find(p: Principal, req: QueryRequest): Promise<QueryResult>;
}

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
  metadata: DicomJson;
}
export interface RetrievePort {
  /** Only instances in scope(p, 'read'); not-found (or nothing) otherwise. */
  list(p: Principal, req: RetrieveRequest): Promise<StoredInstance[]>;
  /** The stored Part 10 object, byte for byte. */
  open(i: StoredInstance): Promise<Readable>;
}

export interface AuditPort {
  record(event: AuditEvent): Promise<void>;
}

export interface PkiMaterial {
  caCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

/** Timeouts and sizes; defaults in server.ts. Tests shorten them. */
export interface DimseTuning {
  handshakeTimeoutMs: number;
  /** A-ASSOCIATE-RQ must arrive (and the decision be made) within this (PS3.8 ARTIM). */
  artimMs: number;
  idleMs: number;
  pduMs: number;
  writeStallMs: number;
  /** Every rejected association is answered this long after its request arrived. */
  rejectDelayMs: number;
  /** How long we wait for the C-STORE-RSP of a sub-operation. */
  subOpTimeoutMs: number;
  /** C-FIND: matches fetched from the core per page. */
  findPageSize: number;
  /** Largest object we transcode in memory for a C-GET/C-MOVE sub-operation. */
  maxTranscodeBytes: number;
  /** C-MOVE: TCP + TLS + A-ASSOCIATE to the destination. */
  moveConnectTimeoutMs: number;
}

export interface DimseDeps {
  config: Pick<Config, 'host' | 'dimsePort' | 'aeTitle' | 'dataDir' | 'limits' | 'dimseRequireBoth'>;
  pki: PkiMaterial;
  authenticator: DimseAuthenticator;
  ingest: IngestPort;
  query: QueryPort;
  retrieve: RetrievePort;
  audit: AuditPort;
  logger: Logger;
  tuning?: Partial<DimseTuning>;
}

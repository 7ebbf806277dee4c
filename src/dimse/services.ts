// What the DIMSE front door needs from the rest of Tresor. The core service shapes
// mirror src/core/{ingest,query,retrieve}.ts (structural types, so the real
// services fit without this module importing their implementations).

import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { AuditLog } from '../core/audit.js';
import type { DicomJson } from '../core/dicom/json.js';
import type { DimseAuthenticator } from './association.js';
import type { IngestService } from '../core/ingest.js';
import type { QueryService } from '../core/query.js';
import type { RetrieveService } from '../core/retrieve.js';
import type { PixelCodec } from '../core/dicom/pixels/pixel-codec.js';

export type { DicomJson };

// The contracts are the core's own; the ports are the parts of each service this
// door uses.
export type { IngestOptions, IngestResult } from '../core/ingest.js';
export type { QueryLevel, QueryRequest, QueryResult } from '../core/query.js';
export type { RetrieveRequest, StoredInstance } from '../core/retrieve.js';
// Each audits itself in the core (ARCHITECTURE.md rule 8): C-STOREs of an association
// are one transfer, a C-FIND is one paged search, a C-GET/C-MOVE is one retrieve run.
export type IngestPort = Pick<IngestService, 'openTransfer'>;
export type QueryPort = Pick<QueryService, 'searchPaged'>;
export type RetrievePort = Pick<RetrieveService, 'run' | 'list'>;

/** The association's own rows are written through core/audit-association.ts with this. */
export type AuditPort = Pick<AuditLog, 'record' | 'recordAfter'>;

export interface PkiMaterial {
  caCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** The ECDSA pair served beside the RSA one (pki/ca.ts servedPairs); outgoing C-MOVE connections use the RSA pair. */
  serverEc?: { certPem: string; keyPem: string };
}

/** Timeouts and sizes; defaults in server.ts. Tests shorten them. */
export interface DimseTuning {
  handshakeTimeoutMs: number;
  /**
   * Connections not yet authenticated (TLS handshake, A-ASSOCIATE-RQ, authentication), in
   * total and per address: separate from, and far below, the association limits
   * (listener.ts), so that a few addresses that never authenticate lock nobody out.
   */
  maxPendingConnections: number;
  maxPendingPerAddress: number;
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
  /** Largest object (as stored) we read into memory to transcode for a C-GET/C-MOVE sub-operation. */
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
  /** Transcoding under limits, in codec child processes (core/dicom/pixels/pixel-codec.ts). */
  pixels: Pick<PixelCodec, 'transcodeDataset'>;
  logger: Logger;
  tuning?: Partial<DimseTuning>;
  /**
   * Start a C-STORE's credential re-check when its data set begins to arrive, not after
   * (one database round trip off every answer). For PostgreSQL, where the statement runs
   * beside the transfer; not for the embedded database, whose statements run on this
   * thread anyway, so nothing overlaps (and the A/B runs measured it no better there).
   */
  recheckWhileReceiving?: boolean;
  /**
   * A connection that never got an association: its TLS handshake failed (plaintext, a
   * scanner, a client that does not trust us), or it closed or timed out before sending an
   * A-ASSOCIATE-RQ (e.g. a TLS client without a certificate that sends nothing). Counted
   * and audited rate-limited (core/refusal-log.ts); rejected associations have their own row.
   */
  onAnonymousRefusal?: (r: { reason: 'tls-handshake' | 'no-association'; address: string; code: string }) => void;
}

// The one owner of Tresor's Prometheus registry (prom-client). Everything Tresor
// measures is declared here, with labels drawn only from fixed enums (door, action,
// outcome, reason, operation): never a UID, a name or an address, so a scrape carries
// no patient data and its cardinality is bounded. The core knows nothing of this
// module: deps.ts wraps the ports and services (instrument.ts) and the doors report
// connections and anonymous refusals through the small callbacks they already take.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { REASONS } from '../core/errors.js';

export type Door = 'dimse' | 'dicomweb';
/** Refusals of callers nobody knows (issue 14 "Also"): counted and audited rate-limited. */
export type AnonymousRefusal =
  | 'missing-token'
  | 'invalid-token'
  | 'token-expired'
  | 'rate-limited'
  | 'tls-handshake'
  | 'no-association'
  | 'stow-abandoned';
export type RefusalDoor = Door | 'admin' | 'auth';

const DOORS = ['dimse', 'dicomweb'] as const;
const OUTCOMES = ['success', 'failure', 'denied'] as const;
/** Latency buckets in seconds: from a cached query (ms) to a large object over a slow link (minutes). */
const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** A label value from the reason catalogue (core/errors.ts), or 'other'. */
export function reasonLabel(reason: unknown): string {
  if (typeof reason !== 'string') return 'other';
  if (reason === 'internal') return 'internal';
  return Object.hasOwn(REASONS, reason) ? reason : 'other';
}

export function doorLabel(via: unknown): string {
  return via === 'dimse' || via === 'dicomweb' || via === 'admin' || via === 'cli' ? via : 'none';
}

export interface Metrics {
  registry: Registry;
  stores: Counter<'door' | 'outcome'>;
  storedBytes: Counter<'door'>;
  storeSeconds: Histogram<'door'>;
  retrievals: Counter<'door' | 'outcome'>;
  queries: Counter<'door' | 'outcome'>;
  querySeconds: Histogram<'door'>;
  errors: Counter<'door' | 'kind' | 'reason'>;
  logins: Counter<'outcome'>;
  lockouts: Counter<'scope'>;
  anonymousRefusals: Counter<'door' | 'reason'>;
  blobSeconds: Histogram<'operation' | 'outcome'>;
  dbSeconds: Histogram<'outcome'>;
  httpConnections: Gauge;
  dimseAssociations: Gauge;
  dimseConnections: Gauge;
  certificateExpiry: Gauge<'certificate'>;
}

/** What the scrape-time gauges read (set by main.ts once the listeners run). */
export interface LiveSources {
  dimseAssociations?: () => number;
  dimseConnections?: () => number;
  /** Seconds until expiry per certificate ('ca', 'server', 'device' = the soonest device certificate). */
  certificateExpiry?: () => Promise<Partial<Record<'ca' | 'server' | 'device', number>>>;
}

export type TresorMetrics = Metrics & { sources: LiveSources };

export function createMetrics(opts: { processMetrics?: boolean } = {}): TresorMetrics {
  const registry = new Registry();
  const registers = [registry];
  const sources: LiveSources = {};
  // Node process metrics (CPU, memory, event-loop lag, GC, handles) under the same prefix.
  if (opts.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'tresor_' });

  const m: Metrics & { sources: LiveSources } = {
    registry,
    sources,
    stores: new Counter({ name: 'tresor_stores_total', help: 'Instances received for storage, by door and outcome (duplicates count as success)', labelNames: ['door', 'outcome'], registers }),
    storedBytes: new Counter({ name: 'tresor_stored_bytes_total', help: 'Bytes written to the blob store for new instances, by door', labelNames: ['door'], registers }),
    storeSeconds: new Histogram({ name: 'tresor_store_duration_seconds', help: 'Time to store one instance (parse, blob, row), by door', labelNames: ['door'], buckets: SECONDS, registers }),
    retrievals: new Counter({ name: 'tresor_retrievals_total', help: 'Retrieve requests (WADO, C-GET, C-MOVE), by door and outcome', labelNames: ['door', 'outcome'], registers }),
    queries: new Counter({ name: 'tresor_queries_total', help: 'Query requests (QIDO-RS, C-FIND), by door and outcome', labelNames: ['door', 'outcome'], registers }),
    querySeconds: new Histogram({ name: 'tresor_query_duration_seconds', help: 'Time to answer one query, by door', labelNames: ['door'], buckets: SECONDS, registers }),
    errors: new Counter({ name: 'tresor_errors_total', help: 'Failed or refused operations, by door, error kind and reason (core/errors.ts catalogue)', labelNames: ['door', 'kind', 'reason'], registers }),
    logins: new Counter({ name: 'tresor_logins_total', help: 'Password and certificate logins, by outcome', labelNames: ['outcome'], registers }),
    lockouts: new Counter({ name: 'tresor_lockouts_total', help: 'Locks placed after repeated failed logins, on an account or a source address', labelNames: ['scope'], registers }),
    anonymousRefusals: new Counter({ name: 'tresor_anonymous_refusals_total', help: 'Requests and connections refused before anyone was authenticated, by door and reason', labelNames: ['door', 'reason'], registers }),
    blobSeconds: new Histogram({ name: 'tresor_blob_store_duration_seconds', help: 'Blob store calls, by operation and outcome (get: until the stream opens)', labelNames: ['operation', 'outcome'], buckets: SECONDS, registers }),
    dbSeconds: new Histogram({ name: 'tresor_database_query_duration_seconds', help: 'Database statements, by outcome', labelNames: ['outcome'], buckets: SECONDS, registers }),
    httpConnections: new Gauge({ name: 'tresor_http_connections', help: 'Open HTTPS connections (TLS sockets, HTTP/1.1 and HTTP/2)', registers }),
    dimseAssociations: new Gauge({
      name: 'tresor_dimse_associations',
      help: 'Live DICOM associations',
      registers,
      collect() {
        if (sources.dimseAssociations) this.set(sources.dimseAssociations());
      },
    }),
    dimseConnections: new Gauge({
      name: 'tresor_dimse_connections',
      help: 'Open DICOM TLS connections, handshakes included',
      registers,
      collect() {
        if (sources.dimseConnections) this.set(sources.dimseConnections());
      },
    }),
    certificateExpiry: new Gauge({
      name: 'tresor_certificate_expiry_seconds',
      help: 'Seconds until a certificate expires (negative: expired): the CA, the server certificate, the soonest device certificate',
      labelNames: ['certificate'],
      registers,
      async collect() {
        if (!sources.certificateExpiry) return;
        const s = await sources.certificateExpiry().catch(() => ({}) as Record<string, number>);
        for (const [certificate, v] of Object.entries(s)) if (typeof v === 'number') this.set({ certificate }, v);
      },
    }),
  };
  // Zero series for the fixed label values, so a dashboard sees 0 rather than nothing.
  for (const door of DOORS) {
    m.storedBytes.inc({ door }, 0);
    for (const outcome of OUTCOMES) {
      m.stores.inc({ door, outcome }, 0);
      m.retrievals.inc({ door, outcome }, 0);
      m.queries.inc({ door, outcome }, 0);
    }
  }
  for (const outcome of OUTCOMES) m.logins.inc({ outcome }, 0);
  return m;
}

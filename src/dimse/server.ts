// startDimseServer: the DIMSE front door. One TLS listener (listener.ts); per
// connection one TresorScp (what dcmjs-dimse's Server does per socket, with our
// own socket handling); process-wide dcmjs-dimse settings made once here.

import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import dimse from 'dcmjs-dimse';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../core/dicom/uids.js';
import { silenceDcmjsLogging } from './protocol/dcmjs-internal.js';
import { listenTls } from './protocol/listener.js';
import { servedPairs } from '../pki/ca.js';
import { TresorScp } from './scp.js';
import type { DimseDeps, DimseTuning } from './services.js';

export type { DimseDeps, DimseTuning } from './services.js';
export type { DimseAuthenticator, MoveDestination } from './association.js';

export const DEFAULT_TUNING: DimseTuning = {
  // The unauthenticated phase is short (issue 14, item 4): a device completes its TLS
  // handshake and sends its A-ASSOCIATE-RQ within milliseconds; an idle socket waits at
  // most 5 s + 10 s before it is closed (ARTIM, PS3.8 §9.1.5, is ours to choose).
  handshakeTimeoutMs: 5_000,
  artimMs: 10_000,
  // 8 per address: a `tresor edge` or a NAT carries several devices' handshakes at once.
  maxPendingConnections: 32,
  maxPendingPerAddress: 8,
  idleMs: 120_000,
  pduMs: 60_000,
  writeStallMs: 60_000,
  rejectDelayMs: 1_000,
  subOpTimeoutMs: 120_000,
  findPageSize: 200,
  maxTranscodeBytes: 256 * 1024 * 1024,
  moveConnectTimeoutMs: 15_000,
};

export interface DimseServer {
  port: number;
  /** Open connections (TLS handshakes included). */
  connections(): number;
  /** What each live association holds on to (for health checks and tests). */
  associations(): ReturnType<TresorScp['diagnostics']>[];
  /** Serves the PKI's current server certificate to new connections (a renewal by another node). */
  reloadCertificate(): void;
  close(): Promise<void>;
}

export async function startDimseServer(deps: DimseDeps): Promise<DimseServer> {
  const tuning: DimseTuning = { ...DEFAULT_TUNING, ...deps.tuning };
  const log = deps.logger.child({ component: 'dimse' });
  const resolved = { ...deps, tuning, logger: log };

  silenceDcmjsLogging();
  // Process-wide in dcmjs-dimse: what we announce in every A-ASSOCIATE-AC/RQ.
  dimse.Implementation.setImplementationClassUid(IMPLEMENTATION_CLASS_UID);
  dimse.Implementation.setImplementationVersion(IMPLEMENTATION_VERSION_NAME);
  dimse.Implementation.setMaxPduLength(deps.config.limits.maxPduBytes);
  // No codecs here: transcoding for C-GET/C-MOVE runs in codec child processes (deps.pixels).

  // Temporary C-STORE files: private to Tresor; leftovers of a crash are removed.
  const tmp = path.join(deps.config.dataDir, 'tmp');
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  for (const f of await readdir(tmp)) if (/^dimse-[0-9a-f-]+\.part$/.test(f)) await rm(path.join(tmp, f), { force: true });

  const live = new Set<TresorScp>();
  const listener = await listenTls({
    host: deps.config.host,
    port: deps.config.dimsePort,
    keyPem: servedPairs(deps.pki).keys,
    certPem: servedPairs(deps.pki).certs,
    caPem: deps.pki.caCertPem,
    maxConnections: deps.config.limits.maxAssociations,
    maxConnectionsPerAddress: deps.config.limits.maxAssociationsPerAddress,
    maxPending: tuning.maxPendingConnections,
    maxPendingPerAddress: tuning.maxPendingPerAddress,
    handshakeTimeoutMs: tuning.handshakeTimeoutMs,
    logger: log,
    onHandshakeFailure: (address, code) => deps.onAnonymousRefusal?.({ reason: 'tls-handshake', address, code }),
    onConnection(socket, address, admit) {
      const scp = new TresorScp(socket, address, resolved, admit);
      live.add(scp);
      socket.once('close', () => live.delete(scp));
    },
  });
  log.info({ host: deps.config.host, port: listener.port, aeTitle: deps.config.aeTitle }, 'dimse listening (TLS)');

  return {
    port: listener.port,
    connections: () => listener.connectionCount(),
    associations: () => [...live].map((s) => s.diagnostics()),
    reloadCertificate: () => listener.setCertificate({ keyPem: servedPairs(deps.pki).keys, certPem: servedPairs(deps.pki).certs, caPem: deps.pki.caCertPem }),
    async close() {
      const closing = listener.close(5_000);
      for (const scp of live) scp.guard.abort('server-shutdown', 'server shutting down');
      await closing;
    },
  };
}

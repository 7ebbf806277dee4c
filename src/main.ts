// `tresor serve`: loadConfig → createDeps → bootstrap admin → HTTPS + DIMSE over TLS;
// graceful shutdown on SIGTERM/SIGINT.

import type { FastifyInstance } from 'fastify';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import { createDeps, dimseServerDeps, type Deps } from './deps.js';
import { buildApp } from './http/app.js';
import { httpsOptions } from './http/tls.js';
import { startDimseServer } from './dimse/server.js';
import type { Logger } from './log.js';
import { checkKeyFileMode, checkTlsMaterial, cleanTempDir, tightenModes } from './startup-checks.js';
import { acquireDataDirLock } from './lib/data-dir-lock.js';
import { probePorts, withStartupRetry } from './startup.js';
import { startObservability } from './observability.js';
import { readMetricsToken } from './metrics/server.js';

export interface RunningServer {
  deps: Deps;
  http: FastifyInstance;
  httpPort: number;
  dimsePort: number;
  /** The scrape listener's port when TRESOR_METRICS_PORT is set. */
  metricsPort?: number;
  close(): Promise<void>;
}

export async function startServer(config: Readonly<Config>, logger: Logger): Promise<RunningServer> {
  // Everything Tresor creates is its own (PGlite writes 0666/0755 otherwise).
  process.umask(0o077);
  // Settings files and ports first, before anything is written (startup.ts).
  const metricsToken = config.metrics?.tokenFile !== undefined ? await readMetricsToken(config.metrics.tokenFile) : undefined;
  await probePorts([
    { what: 'HTTPS', setting: 'TRESOR_HTTP_PORT', host: config.host, port: config.httpPort },
    { what: 'DICOM TLS', setting: 'TRESOR_DIMSE_PORT', host: config.host, port: config.dimsePort },
    ...(config.metrics ? [{ what: 'metrics', setting: 'TRESOR_METRICS_PORT', host: config.metrics.host, port: config.metrics.port }] : []),
  ]);
  // Before anything is written: one process per data directory (lib/data-dir-lock.ts).
  const lock = acquireDataDirLock(config.dataDir, 'serve');
  let deps: Deps;
  try {
    // Key files readable by others are refused before anything is read from them (startup-checks.ts).
    const keyFiles = config.tls.key !== undefined ? [config.tls.key, ...(config.tls.caKey !== undefined ? [config.tls.caKey] : [])] : [path.join(config.dataDir, 'tls', 'server.key'), path.join(config.dataDir, 'tls', 'ca.key')];
    for (const f of keyFiles) await fs.access(f).then(() => checkKeyFileMode(f), () => undefined);
    // The database and S3 may still be starting (compose, systemd): wait for them, bounded.
    deps = await withStartupRetry('the database and the blob store', config.startupWaitSeconds, logger, () => createDeps(config, logger));
  } catch (e) {
    lock.release();
    throw e;
  }
  let http: FastifyInstance | undefined;
  try {
    for (const w of checkTlsMaterial(deps.pki)) logger.warn(w);
    const fixed = await tightenModes(config.dataDir, [path.join(config.dataDir, 'blobs')]);
    if (fixed) logger.warn({ entries: fixed }, 'removed group/other permissions under the data directory (it must be private to Tresor)');
    const stale = await cleanTempDir(deps.tmpDir);
    if (stale) logger.warn({ entries: stale }, 'removed temporary files left by an earlier run');
    const boot = await deps.identity.bootstrapAdmin({ adminPassword: config.adminPassword });
    if (boot.created && boot.passwordFile) {
      // The file, never the password (ARCHITECTURE.md "Interfaces").
      logger.warn({ file: boot.passwordFile }, 'created the admin account: its one-time password is in this file (mode 0600); change it with POST /auth/password');
    } else if (boot.created) {
      logger.info('created the admin account with TRESOR_ADMIN_PASSWORD');
    }

    http = await buildApp(deps, { https: httpsOptions(deps.pki) });
    await http.listen({ host: config.host, port: config.httpPort });
    const httpPort = (http.server.address() as { port: number }).port;
    const dimse = await startDimseServer(dimseServerDeps(deps));
    const serving = await startObservability(deps, dimse, metricsToken).catch(async (e: unknown) => {
      await dimse.close();
      throw e;
    });
    const server = http.server as unknown as { setSecureContext(o: object): void };
    deps.onPkiChange(() => {
      server.setSecureContext(httpsOptions(deps.pki));
      dimse.reloadCertificate();
    });
    logger.info({ host: config.host, httpPort, dimsePort: dimse.port, aeTitle: config.aeTitle }, 'tresor is listening (HTTPS and DICOM TLS only)');

    // Housekeeping now and hourly: blobs left by a crash, and quiet lockout rows.
    // The first sweep on the embedded database takes every ingest entry, whatever its age:
    // that database is this process's alone (data-directory lock), so no upload can still
    // be in flight, and what a crash (SIGKILL, power loss) left is removed at once. On
    // PostgreSQL other nodes may be uploading: there entries wait for the hour.
    let first = true;
    const housekeeping = async () => {
      const startUp = first;
      first = false;
      const swept = await deps.sweepBlobs({ minAgeMs: startUp && !config.databaseUrl ? 0 : undefined }).catch(() => ({ deleted: 0, kept: 0, failed: 1 }));
      if (swept.deleted || swept.failed) logger.warn(swept, 'blob sweep removed objects left without rows');
      if (startUp) logger.info(swept, 'start-up blob sweep done');
      await deps.identity.pruneLockouts().catch(() => undefined);
    };
    void housekeeping();
    const prune = setInterval(() => void housekeeping(), 3600_000);
    prune.unref();
    const app = http;
    return {
      deps,
      http: app,
      httpPort,
      dimsePort: dimse.port,
      metricsPort: serving.metricsPort,
      async close() {
        clearInterval(prune);
        await Promise.allSettled([dimse.close(), app.close(), serving.close()]);
        await deps.close();
        lock.release();
      },
    };
  } catch (e) {
    await http?.close().catch(() => undefined);
    await deps.close().catch(() => undefined);
    lock.release();
    throw e;
  }
}

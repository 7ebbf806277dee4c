// `tresor serve`: loadConfig → createDeps → bootstrap admin → HTTPS + DIMSE over TLS;
// graceful shutdown on SIGTERM/SIGINT.

import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { createDeps, type Deps } from './deps.js';
import { buildApp } from './http/app.js';
import { httpsOptions } from './http/tls.js';
import type { Logger } from './log.js';

export interface RunningServer {
  deps: Deps;
  http: FastifyInstance;
  httpPort: number;
  dimsePort: number;
  close(): Promise<void>;
}

export async function startServer(config: Readonly<Config>, logger: Logger): Promise<RunningServer> {
  const deps = await createDeps(config, logger);
  try {
    const boot = await deps.identity.bootstrapAdmin({ adminPassword: config.adminPassword });
    if (boot.created && boot.passwordFile) {
      // The file, never the password (ARCHITECTURE.md "Interfaces").
      logger.warn({ file: boot.passwordFile }, 'created the admin account: its one-time password is in this file (mode 0600); change it with POST /auth/password');
    } else if (boot.created) {
      logger.info('created the admin account with TRESOR_ADMIN_PASSWORD');
    }

    const http = await buildApp(
      {
        config,
        logger,
        identity: deps.identity,
        audit: deps.audit,
        health: async () => {
          await deps.db.raw('select 1');
        },
      },
      { https: httpsOptions(deps.pki) },
    );
    await http.listen({ host: config.host, port: config.httpPort });
    const httpPort = (http.server.address() as { port: number }).port;
    const dimse = { port: 0, close: async () => undefined }; // replaced when the DIMSE door lands
    logger.info({ host: config.host, httpPort, dimsePort: dimse.port, aeTitle: config.aeTitle }, 'tresor is listening (HTTPS and DICOM TLS only)');

    const prune = setInterval(() => void deps.identity.pruneLockouts().catch(() => undefined), 3600_000);
    prune.unref();
    return {
      deps,
      http,
      httpPort,
      dimsePort: dimse.port,
      async close() {
        clearInterval(prune);
        await Promise.allSettled([dimse.close(), http.close()]);
        await deps.close();
      },
    };
  } catch (e) {
    await deps.close().catch(() => undefined);
    throw e;
  }
}

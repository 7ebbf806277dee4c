// `tresor edge --config FILE`: load and check edge.json, start the listeners (one log
// line says where), stop on SIGTERM/SIGINT. A bad config is one line per problem on
// stderr and exit code 2, like `tresor serve`.

import { createLogger } from '../log.js';
import { EdgeConfigError, loadEdgeConfig } from './config.js';
import { startEdge } from './edge.js';

export async function runEdge(configFile: string, logLevel: string): Promise<void> {
  let cfg;
  try {
    cfg = await loadEdgeConfig(configFile);
  } catch (e) {
    if (e instanceof EdgeConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const logger = createLogger(logLevel).child({ service: 'tresor-edge' });
  // Handlers first: startEdge logs "listening", and a supervisor may send SIGTERM the
  // moment it reads that line; it must find a clean stop, not the default signal death.
  const running: { edge?: Awaited<ReturnType<typeof startEdge>> } = {};
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'edge shutting down');
    setTimeout(() => process.exit(1), 10_000).unref();
    await running.edge?.close().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  running.edge = await startEdge(cfg, logger);
  if (stopping) await running.edge.close().catch(() => undefined);
}

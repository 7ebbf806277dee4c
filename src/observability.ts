// What runs next to the listeners once they serve: the Prometheus scrape listener
// (TRESOR_METRICS_PORT, src/metrics/), the live gauges' sources, and the minute flush
// of the refusal summaries (core/refusal-log.ts, identity's token refusals).

import type { Deps } from './deps.js';
import type { DimseServer } from './dimse/server.js';
import { startMetricsServer, type MetricsServer } from './metrics/server.js';

export async function startObservability(deps: Deps, dimse: Pick<DimseServer, 'associations' | 'connections'>, token?: string): Promise<{ metricsPort?: number; close(): Promise<void> }> {
  deps.metrics.sources.dimseAssociations = () => dimse.associations().length;
  deps.metrics.sources.dimseConnections = () => dimse.connections();
  let server: MetricsServer | undefined;
  const m = deps.config.metrics;
  if (m) {
    server = await startMetricsServer({ host: m.host, port: m.port, registry: deps.metrics.registry, token });
    deps.logger.info({ host: m.host, port: server.port, token: token !== undefined }, 'metrics listening (GET /metrics)');
  }
  const flush = setInterval(() => void deps.flushRefusals().catch(() => undefined), 60_000);
  flush.unref();
  return {
    metricsPort: server?.port,
    async close() {
      clearInterval(flush);
      await deps.flushRefusals().catch(() => undefined);
      await server?.close();
    },
  };
}

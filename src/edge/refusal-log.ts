// Refused associations are logged (who, which AE titles, which rule) — but a scanner
// or a misconfigured device looping on connect must not flood the log: at most
// `perMinute` lines a minute, then one line with the number left out (as
// dimse/protocol/listener.ts does for TLS handshake failures).

import type { Logger } from 'pino';

export type RefusalLog = (log: Logger, fields: Record<string, unknown>) => void;

export function refusalLog(logger: Logger, perMinute = 20): { log: RefusalLog; stop(): void } {
  let logged = 0;
  let suppressed = 0;
  const window = setInterval(() => {
    if (suppressed > 0) logger.warn({ suppressed }, 'edge refusals not logged in the last minute');
    logged = 0;
    suppressed = 0;
  }, 60_000);
  window.unref();
  return {
    log: (log, fields) => {
      if (logged++ < perMinute) log.warn(fields, 'edge association refused');
      else suppressed++;
    },
    stop: () => clearInterval(window),
  };
}

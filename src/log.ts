// The root logger and its redaction rules (ARCHITECTURE.md rule 8): UIDs and
// principal names may be logged; patient data and secrets never. Query strings
// are dropped from request logs because QIDO-RS puts patient names and IDs there.

import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'password',
  '*.password',
  'newPassword',
  '*.newPassword',
  'currentPassword',
  '*.currentPassword',
  'passcode',
  '*.passcode',
  'privateKey',
  '*.privateKey',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
];

/** A request as logged: method, path without query string, remote address. */
export function requestSerializer(req: { method?: string; url?: string; ip?: string; id?: string }): Record<string, unknown> {
  return { id: req.id, method: req.method, path: typeof req.url === 'string' ? req.url.split('?')[0] : undefined, remote: req.ip };
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tresor' },
      // "time":"2026-12-01T08:00:00.000Z" (ISO 8601, UTC) rather than epoch milliseconds: readable in a journal or a file.
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { req: requestSerializer, err: pino.stdSerializers.err },
    },
    destination,
  );
}

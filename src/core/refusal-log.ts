// Refusals of callers nobody knows yet (issue 14 "Also"): HTTP 429s, TLS handshakes
// that fail on either door, STOW-RS requests abandoned mid-body. Each is counted by the
// caller (metrics) and audited here as a Security Alert (PS3.15 A.5.3.11: a protocol
// failure or an attempt to get in), throttled per source address like the anonymous
// token refusals (audit-throttle.ts): the first LIMIT per source and minute get a row
// each, the rest are held back and written as one summary row per source by flush()
// (main.ts calls it every minute and at shutdown). No patient data: reason, door, source.

import type { AuditLog } from './audit.js';
import { createRefusalThrottle } from './audit-throttle.js';

export type RefusalReason = 'rate-limited' | 'tls-handshake' | 'no-association' | 'stow-abandoned';

export interface Refusal {
  reason: RefusalReason;
  via: 'dimse' | 'dicomweb' | 'admin' | 'auth';
  source?: string;
  /** A short machine code (e.g. the TLS alert or errno); never request content. */
  code?: string;
}

export interface RefusalLog {
  refuse(r: Refusal): Promise<void>;
  flush(): Promise<void>;
}

export function createRefusalLog(audit: Pick<AuditLog, 'recordAfter'>, now: () => Date, opts: { limit?: number; windowMs?: number } = {}): RefusalLog {
  const throttle = createRefusalThrottle(now, opts);
  // What the held-back refusals were, per source, for the summary row.
  const heldBack = new Map<string, Record<string, number>>();
  return {
    async refuse(r) {
      const key = r.source ?? 'unknown';
      const admitted = throttle.admit(key);
      if (!admitted) {
        if (!heldBack.has(key) && heldBack.size >= 10_000) heldBack.clear();
        const counts = heldBack.get(key) ?? {};
        counts[r.reason] = (counts[r.reason] ?? 0) + 1;
        heldBack.set(key, counts);
        return;
      }
      if (admitted.suppressed) heldBack.delete(key); // told in this row
      await audit.recordAfter({
        action: 'security-alert',
        outcome: 'denied',
        source: r.source,
        details: { reason: r.reason, via: r.via, ...(r.code ? { code: r.code.slice(0, 64) } : {}), ...(admitted.suppressed ? { suppressedBefore: admitted.suppressed } : {}) },
      });
    },
    async flush() {
      for (const { source, suppressed } of throttle.drain()) {
        const counts = heldBack.get(source) ?? {};
        heldBack.delete(source);
        await audit.recordAfter({
          action: 'security-alert',
          outcome: 'denied',
          source: source === 'unknown' ? undefined : source,
          details: { reason: 'suppressed', suppressed, counts },
        });
      }
      heldBack.clear();
    },
  };
}

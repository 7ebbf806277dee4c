// Every query is audited, through whichever door it came (C-FIND or QIDO-RS):
// who asked, at which level, how many matches, which studies were disclosed.
// The matching keys are never recorded: they carry patient names and IDs.

import type { AuditLog } from './audit.js';
import { isTresorError } from './errors.js';
import type { QueryService } from './query.js';

/** At most this many study UIDs per audit event; the count is always exact. */
const MAX_AUDITED_UIDS = 200;

export function auditedQuery(query: QueryService, audit: AuditLog): QueryService {
  return {
    async find(p, req) {
      const base = { action: 'query', principal: p, source: p.source };
      try {
        const r = await query.find(p, req);
        const uids = [...new Set(r.matches.map((m) => m['0020000D']?.Value?.[0]).filter((u): u is string => typeof u === 'string'))];
        await audit.record({
          ...base,
          outcome: 'success',
          studyUids: uids.slice(0, MAX_AUDITED_UIDS),
          details: { level: req.level, matches: r.matches.length, truncated: r.truncated, studies: uids.length },
        });
        return r;
      } catch (e) {
        await audit
          .record({ ...base, outcome: 'failure', details: { level: req.level, reason: isTresorError(e) ? e.reason : 'internal' } })
          .catch(() => undefined);
        throw e;
      }
    },
  };
}

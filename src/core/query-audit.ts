// Every query is audited once, in the core, whichever door it came through (C-FIND or
// QIDO-RS): one `query` row per request (PS3.15 A.5.3.12), however many pages a C-FIND
// fetches. Who asked, at which level, how many matches, which studies were disclosed.
// The matching keys are never recorded: they carry patient names and IDs.

import { auditedRun, MAX_AUDITED_UIDS, outcomeOf, type AuditDoor, type AuditLog } from './audit.js';
import type { Principal } from './principal.js';
import type { DicomJson, QueryRequest, QueryResult } from './query.js';

type Find = (p: Principal, req: QueryRequest) => Promise<QueryResult>;
type Audit = Pick<AuditLog, 'record' | 'recordAfter'>;

const studyUidOf = (m: DicomJson): string | undefined => {
  const u = m['0020000D']?.Value?.[0];
  return typeof u === 'string' ? u : undefined;
};

function needAudit(audit: Audit | undefined): Audit {
  if (!audit) throw new Error('the query service was built without an audit log');
  return audit;
}

export function auditedSearches(find: Find, audit: Audit | undefined) {
  const base = (p: Principal, req: QueryRequest, door: AuditDoor) => ({
    action: 'query',
    principal: p,
    source: door.source ?? p.source,
    details: { via: door.via, level: req.level, ...door.details },
  });
  return {
    /** One request, one row. */
    search(p: Principal, req: QueryRequest, door: AuditDoor): Promise<QueryResult> {
      return auditedRun(needAudit(audit), base(p, req, door), async (note) => {
        const r = await find(p, req);
        for (const m of r.matches) {
          const u = studyUidOf(m);
          if (u) note.studyUids.add(u);
        }
        note.details = { matches: r.matches.length, truncated: r.truncated, studies: note.studyUids.size };
        return r;
      });
    },

    /**
     * Every match of `req`, fetched `pageSize` at a time (C-FIND's pending responses).
     * One row when the consumer is done: finished, stopped early (C-CANCEL: `cancelled`),
     * or failed. Nothing is written for a generator never iterated.
     */
    async *searchPaged(p: Principal, req: QueryRequest, door: AuditDoor, pageSize: number): AsyncGenerator<DicomJson> {
      const a = needAudit(audit);
      const studies = new Set<string>();
      let matches = 0;
      let complete = false;
      let error: unknown;
      try {
        for (let offset = 0; ; offset += pageSize) {
          const page = await find(p, { ...req, limit: pageSize, offset });
          for (const m of page.matches) {
            const u = studyUidOf(m);
            if (u) studies.add(u);
            matches++;
            yield m;
          }
          if (page.matches.length < pageSize || page.matches.length === 0) break;
        }
        complete = true;
      } catch (e) {
        error = e;
        throw e;
      } finally {
        const b = base(p, req, door);
        const failed = error === undefined ? undefined : outcomeOf(error);
        await a.recordAfter({
          ...b,
          outcome: failed?.outcome ?? 'success',
          studyUids: [...studies].slice(0, MAX_AUDITED_UIDS),
          details: { ...b.details, matches, studies: studies.size, ...(failed ? { reason: failed.reason } : { cancelled: !complete }) },
        });
      }
    },
  };
}

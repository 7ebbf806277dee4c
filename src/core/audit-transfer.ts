// PS3.15 A.5.3.10 "DICOM Instances Transferred" is one event per transfer: a STOW-RS
// request, or a DIMSE association that carried C-STOREs, listing the studies (1..N)
// and how many instances of which SOP class. The transfer accumulates here and is
// written once, when the request is answered or the association ends (released or
// aborted). Refusals and failures inside it are counted, with their reasons; UIDs and
// counts only, never patient data.

import { MAX_AUDITED_UIDS, outcomeOf, type AuditDoor, type AuditLog, type AuditOutcome } from './audit.js';
import type { Principal } from './principal.js';

export interface StoreTransfer {
  /** One instance stored (or re-sent identically: `duplicate`). */
  stored(i: { studyUid: string; sopClassUid: string; duplicate: boolean; warnings: readonly string[] }): void;
  /** One instance refused or failed: by an error of the core, or by the door (`reason`). */
  failed(e: unknown, studyUid?: string): void;
  refused(reason: string): void;
  /** Writes the one `store` row (if anything was attempted); later calls do nothing. Never throws. */
  end(details?: Record<string, unknown>): Promise<void>;
}

export function createStoreTransfer(audit: Pick<AuditLog, 'recordAfter'>, p: Principal, door: AuditDoor): StoreTransfer {
  const studies = new Set<string>();
  const sopClasses: Record<string, number> = {};
  const reasons: Record<string, number> = {};
  let stored = 0;
  let duplicates = 0;
  let failed = 0;
  let denied = 0;
  const warnings = new Set<string>();
  let ended = false;
  const count = (reason: string) => {
    reasons[reason] = (reasons[reason] ?? 0) + 1;
  };
  return {
    stored(i) {
      studies.add(i.studyUid);
      sopClasses[i.sopClassUid] = (sopClasses[i.sopClassUid] ?? 0) + 1;
      if (i.duplicate) duplicates++;
      else stored++;
      for (const w of i.warnings) warnings.add(w);
    },
    failed(e, studyUid) {
      if (studyUid) studies.add(studyUid);
      const o = outcomeOf(e);
      if (o.outcome === 'denied') denied++;
      else failed++;
      count(o.reason);
    },
    refused(reason) {
      failed++;
      count(reason);
    },
    async end(details) {
      if (ended) return;
      ended = true;
      const attempted = stored + duplicates + failed + denied;
      if (attempted === 0) return;
      const ok = stored + duplicates;
      // Everything refused by the authorization point is a denial; anything else short of all stored is a failure.
      const outcome: AuditOutcome = ok === attempted ? 'success' : denied === attempted ? 'denied' : 'failure';
      await audit.recordAfter({
        action: 'store',
        outcome,
        principal: p,
        source: door.source ?? p.source,
        studyUids: [...studies].slice(0, MAX_AUDITED_UIDS),
        details: {
          via: door.via,
          ...door.details,
          ...details,
          instances: attempted,
          stored,
          duplicates,
          failed,
          denied,
          studies: studies.size,
          sopClasses,
          ...(warnings.size ? { warnings: [...warnings] } : {}),
          ...(Object.keys(reasons).length ? { reasons } : {}),
        },
      });
    },
  };
}

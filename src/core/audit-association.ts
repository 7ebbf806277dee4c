// The association-level rows of the DIMSE door, written by the core like every other
// row (ARCHITECTURE.md rule 8): one `association` row per association, accepted or
// rejected (PS3.15 A.5.3.13 User Authentication: the node and, with user identity,
// the user authenticated), and a `security-alert` row (PS3.15 A.5.3.11) when an
// accepted association ends in a protocol violation or is cut off. C-ECHO has no row
// of its own. Details: AE titles, certificate fingerprint, reasons, counts; no patient data.

import type { AuditLog, AuditOutcome } from './audit.js';
import type { Principal } from './principal.js';

type Actor = Pick<Principal, 'kind' | 'id' | 'name'> | null | undefined;
const actor = (p: Actor) => (p ? { kind: p.kind, id: p.id, name: p.name } : null);

/**
 * Accepted (`success`, must be written: the caller refuses the association when this
 * throws, so the trail is complete) or refused (`denied`, best effort).
 */
export function recordAssociation(audit: Pick<AuditLog, 'record'>, a: { outcome: AuditOutcome; principal?: Actor; source: string; association: string; details: Record<string, unknown> }): Promise<void> {
  // `authentication` is how the peer proved who it is (certificate, user identity…); `via` is the door.
  const { via: authentication, ...details } = a.details;
  return audit.record({
    action: 'association',
    outcome: a.outcome,
    principal: actor(a.principal),
    source: a.source,
    details: { via: 'dimse', association: a.association, ...(authentication !== undefined ? { authentication } : {}), ...details },
  });
}

/** An accepted association that ended badly: protocol violation, write stall, local abort. Best effort. */
export function recordSecurityAlert(audit: Pick<AuditLog, 'recordAfter'>, a: { principal?: Actor; source: string; association: string; details: Record<string, unknown> }): Promise<void> {
  return audit.recordAfter({
    action: 'security-alert',
    outcome: 'failure',
    principal: actor(a.principal),
    source: a.source,
    details: { via: 'dimse', association: a.association, ...a.details },
  });
}

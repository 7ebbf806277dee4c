// What the parts of core/identity share: storage, audit, lockout, tokens, the CA, the
// clock; and the one function that turns stored rows into a Principal.

import type { AuditLog } from '../audit.js';
import type { SharedRefusalThrottle } from '../audit-throttle.js';
import type { Lockout } from './lockout.js';
import type { TokenService } from './tokens.js';
import type { AccountKind, BindingRecord, DeviceRecord, IdentityRepo, UserRecord } from './types.js';
import type { Principal } from '../principal.js';
import type { CertificateIssuer } from '../ports/certificate-issuer.js';

export interface IdentityContext {
  repo: IdentityRepo;
  audit: AuditLog;
  lockout: Lockout;
  tokens: TokenService;
  certificates?: CertificateIssuer;
  /** The anonymous-refusal audit throttle shared through the database; absent: per process. */
  refusalThrottle?: SharedRefusalThrottle;
  now: () => Date;
  /** <dataDir>/initial-admin-password: removed once the generated password is changed. */
  initialPasswordFile?: string;
}

/**
 * A principal from stored rows. Bindings in disabled departments give nothing; devices
 * are never global admins. Built on every request and association, never cached, so a
 * disabled account or a changed role takes effect on the next one.
 */
export function toPrincipal(
  kind: AccountKind,
  rec: Pick<UserRecord, 'id' | 'username' | 'globalAdmin'> | Pick<DeviceRecord, 'id' | 'aeTitle'>,
  bindings: readonly BindingRecord[],
  source?: string,
): Principal {
  const p: Principal = {
    kind,
    id: rec.id,
    name: 'username' in rec ? rec.username : rec.aeTitle,
    globalAdmin: kind === 'user' && 'globalAdmin' in rec && rec.globalAdmin,
    roles: Object.freeze(bindings.filter((b) => !b.departmentDisabled).map((b) => Object.freeze({ departmentId: b.departmentId, role: b.role }))),
  };
  if (source !== undefined) p.source = source;
  return Object.freeze(p);
}

export const actorOf = (p: Principal): Pick<Principal, 'kind' | 'id' | 'name'> => ({ kind: p.kind, id: p.id, name: p.name });

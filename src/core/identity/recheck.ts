// Re-checking a principal that authenticated earlier and is still acting on that
// authentication: a DIMSE association (authenticated once, at A-ASSOCIATE-RQ) asks
// this before every request, as the HTTP door re-reads the account behind every
// token (auth.ts sessionForClaims, with the token generation). So disabling a device
// or a user, revoking one of its roles, changing a user's password or re-issuing
// (or revoking) a device certificate ends what is already open, at the next request.
//
// Cost: one statement (repo.accountRead: one round trip, one snapshot; on the embedded
// database none while no account table has changed since the last read, db/account-cache.ts) —
// the account by primary key, its role bindings by the (holder, department, role) unique
// index and, when a user authenticated next to a device certificate, that device by
// primary key. (Was two or three queries on as many pooled connections; issue 13 item 2.)

import { toPrincipal, type IdentityContext } from './context.js';
import type { BindingRecord, DeviceRecord } from './types.js';
import type { Principal } from '../principal.js';

/** What an open association holds on to: who it is, and which credentials proved it. */
export interface HeldCredential {
  principal: Principal;
  /** The device certificate presented (SHA-256 of the DER, lowercase hex) and the device it is bound to. */
  certificate?: { fingerprint256: string; deviceId: number };
  /**
   * A user's token generation (bumped on password change, disable and delete) when the
   * association was accepted; undefined on the first check, which returns the current one.
   */
  generation?: number;
}

export type RevocationReason =
  | 'account-gone'
  | 'device-disabled'
  | 'user-disabled'
  | 'credentials-changed'
  | 'certificate-replaced'
  | 'certificate-expired'
  | 'role-revoked';

export type RecheckResult =
  | { ok: true; principal: Principal; generation?: number }
  | { ok: false; reason: RevocationReason };

/** True when `now` lacks a binding (or the global-admin flag) that `before` had. */
function lostRights(before: Principal, now: Principal): boolean {
  if (before.globalAdmin && !now.globalAdmin) return true;
  return before.roles.some((b) => !now.roles.some((r) => r.departmentId === b.departmentId && r.role === b.role));
}

export function createRecheck(ctx: IdentityContext) {
  const { repo } = ctx;

  function certificateProblem(device: DeviceRecord | null, cert: NonNullable<HeldCredential['certificate']>): RevocationReason | null {
    if (!device) return 'account-gone';
    if (device.disabled) return 'device-disabled';
    // Re-issuing or revoking replaces (or clears) the bound fingerprint; the old one is in revoked_certificates.
    if (device.certFingerprint !== cert.fingerprint256) return 'certificate-replaced';
    if (device.certNotAfter && new Date(device.certNotAfter) < ctx.now()) return 'certificate-expired';
    return null;
  }

  /**
   * The principal as it is now, or why it may no longer act. A loss of rights (a role or
   * the global-admin flag) is a revocation: the association was opened with more than the
   * account now has. Gained rights are simply returned.
   */
  return async function recheckPrincipal(held: HeldCredential): Promise<RecheckResult> {
    const p = held.principal;
    if (p.kind !== 'user' && p.kind !== 'device') return { ok: false, reason: 'account-gone' };
    const cert = held.certificate;
    const separateDevice = cert && !(p.kind === 'device' && cert.deviceId === p.id) ? cert.deviceId : undefined;
    const { account, bindings, certDevice } = await repo.accountRead(p.kind, p.id, separateDevice);
    if (!account) return { ok: false, reason: 'account-gone' };
    if (cert) {
      const problem = certificateProblem(separateDevice === undefined ? (account as DeviceRecord) : certDevice, cert);
      if (problem) return { ok: false, reason: problem };
    }
    let principal: Principal;
    let generation: number | undefined;
    if ('username' in account) {
      if (account.disabled) return { ok: false, reason: 'user-disabled' };
      if (held.generation !== undefined && account.tokenGeneration !== held.generation) return { ok: false, reason: 'credentials-changed' };
      generation = account.tokenGeneration;
      principal = toPrincipal('user', account, bindings as BindingRecord[], p.source);
    } else {
      if (account.disabled) return { ok: false, reason: 'device-disabled' };
      principal = toPrincipal('device', account, bindings as BindingRecord[], p.source);
    }
    if (lostRights(p, principal)) return { ok: false, reason: 'role-revoked' };
    return { ok: true, principal, ...(generation !== undefined ? { generation } : {}) };
  };
}

export type RecheckPrincipal = ReturnType<typeof createRecheck>;

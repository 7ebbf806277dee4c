// Authentication: passwords, device passcodes, device certificates and access tokens,
// each turned into a Principal (or refused). Front doors call these; they make no other
// access decision (ARCHITECTURE.md rule 1). Every attempt is audited; failures count
// toward the lockout of the account and of the source address.

import { createRefusalThrottle } from '../audit-throttle.js';
import { rm, readFile } from 'node:fs/promises';
import { actorOf, toPrincipal, type IdentityContext } from './context.js';
import { accountKey } from './lockout.js';
import { normalizeFingerprint, tryAeTitle, tryUsername } from './names.js';
import type { AccessClaims } from './tokens.js';
import type { AccountKind, UserRecord } from './types.js';
import { forbidden, invalid, unauthenticated } from '../errors.js';
import { burnPasswordCheck, checkPasswordRules, hashPassword, needsRehash, verifyPassword } from './passwords.js';
import type { Principal } from '../principal.js';

export interface Session {
  principal: Principal;
  /** The generated bootstrap password (or one an admin reset) must be changed first. */
  mustChangePassword: boolean;
}

export interface IssuedToken {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  mustChangePassword: boolean;
}

/** Why a login failed, for the audit trail only (the caller always gets the same answer). */
type LoginResult = { ok: true; user: UserRecord; principal: Principal } | { ok: false; reason: 'locked' | 'bad-credentials'; lockedUntil?: Date };

export function createAuthentication(ctx: IdentityContext) {
  const { repo, lockout } = ctx;
  // Shared by every node when the composition root gives a store (issue 11), else this process's.
  const localRefusals = createRefusalThrottle(ctx.now);
  const refusals = ctx.refusalThrottle ?? { admit: async (source: string | undefined) => localRefusals.admit(source), drain: () => localRefusals.drain() };
  /**
   * Audits a refused token. Anonymous garbage (unparseable, badly signed, expired) is
   * throttled per source address (core/audit-throttle.ts); a validly signed token of
   * an unusable account names a real account and is always audited.
   */
  async function auditRefusal(reason: string, source: string | undefined): Promise<void> {
    const anonymous = reason !== 'account-unusable' && reason !== 'password-change-required';
    const admitted = anonymous ? await refusals.admit(source) : { suppressed: 0 };
    if (!admitted) return;
    await ctx.audit.record({ action: 'token.refused', outcome: 'denied', source, details: { reason, ...(admitted.suppressed ? { suppressedBefore: admitted.suppressed } : {}) } });
  }

  async function principalFor(kind: AccountKind, id: number, source?: string): Promise<Principal | null> {
    const { account, bindings } = await repo.accountRead(kind, id);
    if (!account || account.disabled) return null;
    return 'username' in account ? toPrincipal('user', account, bindings, source) : toPrincipal('device', account, bindings, source);
  }

  async function lockedUntil(account: string, source: string | undefined): Promise<Date | null> {
    return lockout.lockedUntil(source ? [account, `addr:${source}`] : [account]);
  }

  /** The password check shared by HTTP login, DIMSE user identity and password change. */
  async function checkUserPassword(username: unknown, password: unknown, source: string | undefined): Promise<LoginResult> {
    const name = tryUsername(username);
    // An unknown or malformed name is counted under its own key: the answer and the
    // timing are the same as for a real account, so names cannot be enumerated.
    const key = accountKey('user', name ?? String(username ?? '').slice(0, 64));
    const locked = await lockedUntil(key, source);
    if (locked) return { ok: false, reason: 'locked', lockedUntil: locked };
    const user = name ? await repo.findUserByName(name) : null;
    const pw = typeof password === 'string' ? password : '';
    const valid = user ? await verifyPassword(pw, user.passwordHash) : (await burnPasswordCheck(pw), false);
    if (!valid || !user || user.disabled) {
      await lockout.recordFailure(key, source);
      return { ok: false, reason: 'bad-credentials' };
    }
    await lockout.recordSuccess(key);
    if (needsRehash(user.passwordHash)) await repo.updateUser(user.id, { passwordHash: await hashPassword(pw) });
    return { ok: true, user, principal: toPrincipal('user', user, await repo.bindingsOf('user', user.id), source) };
  }

  async function auditLogin(method: string, result: LoginResult, name: string, source: string | undefined): Promise<void> {
    await ctx.audit.record({
      action: 'login',
      outcome: result.ok ? 'success' : result.reason === 'locked' ? 'denied' : 'failure',
      principal: result.ok ? actorOf(result.principal) : null,
      source,
      details: result.ok ? { method } : { method, name: name.slice(0, 64), reason: result.reason },
    });
  }

  function lockedError(until: Date | undefined) {
    const retryAfterSeconds = until ? Math.max(1, Math.ceil((until.getTime() - ctx.now().getTime()) / 1000)) : undefined;
    const when = retryAfterSeconds === undefined ? 'later' : retryAfterSeconds < 120 ? `in ${retryAfterSeconds} seconds` : `in ${Math.ceil(retryAfterSeconds / 60)} minutes`;
    return unauthenticated('locked', `too many failed attempts: try again ${when}, or ask an administrator to unlock the account`, { retryAfterSeconds });
  }

  async function issueFor(user: UserRecord): Promise<IssuedToken> {
    const { token, expiresIn } = await ctx.tokens.issue({ sub: `user:${user.id}`, gen: user.tokenGeneration });
    return { accessToken: token, tokenType: 'Bearer', expiresIn, mustChangePassword: user.mustChangePassword };
  }

  /**
   * The session behind verified token claims, re-read from the database: null when
   * the account is gone or disabled, or its password changed since the token was issued.
   */
  async function sessionForClaims(claims: AccessClaims, source?: string): Promise<Session | null> {
    const id = Number(claims.sub.slice('user:'.length));
    // The account and its roles in one statement, read afresh on every request (issue 13:
    // one round trip fewer on every DICOMweb request).
    const { account: user, bindings } = await repo.accountRead('user', id);
    if (!user || !('username' in user) || user.disabled || user.tokenGeneration !== claims.gen) return null;
    return { principal: toPrincipal('user', user, bindings, source), mustChangePassword: user.mustChangePassword };
  }

  /** The password login shared by tokens and browser sessions. */
  async function passwordLogin(input: { username: unknown; password: unknown; source?: string }, method: 'password' | 'session'): Promise<UserRecord> {
    const result = await checkUserPassword(input.username, input.password, input.source);
    await auditLogin(method, result, String(input.username ?? ''), input.source);
    if (!result.ok) {
      if (result.reason === 'locked') throw lockedError(result.lockedUntil);
      throw unauthenticated('bad-credentials', 'wrong username or password');
    }
    return result.user;
  }

  return {
    principalFor,

    /** POST /auth/token. Throws unauthenticated('bad-credentials' | 'locked'). */
    async login(input: { username: unknown; password: unknown; source?: string }): Promise<IssuedToken> {
      return issueFor(await passwordLogin(input, 'password'));
    },

    /**
     * POST /auth/session: the same check, lockout and audit as login (method 'session');
     * the caller starts the browser session for the returned user id.
     */
    async loginForSession(input: { username: unknown; password: unknown; source?: string }): Promise<{ userId: number }> {
      return { userId: (await passwordLogin(input, 'session')).id };
    },

    /** DIMSE user identity (PS3.7 D.3.3.7, type 2): a user's name and password. */
    async authenticatePassword(input: { username: string; password: string; source?: string }): Promise<Principal | null> {
      const result = await checkUserPassword(input.username, input.password, input.source);
      // A password that must be changed first cannot be changed over DIMSE: refuse it here.
      if (result.ok && result.user.mustChangePassword) {
        await ctx.audit.record({ action: 'login', outcome: 'denied', principal: actorOf(result.principal), source: input.source, details: { method: 'dimse-password', reason: 'password-change-required' } });
        return null;
      }
      // A success is the association's own row (core/audit-association.ts, PS3.15 A.5.3.13):
      // one row per association. Failures are recorded here, with their reason.
      if (!result.ok) await auditLogin('dimse-password', result, input.username, input.source);
      return result.ok ? result.principal : null;
    },

    /** DIMSE user identity with a device's AE title as the user name and its passcode. */
    async authenticateDevicePasscode(input: { aeTitle: string; passcode: string; source?: string }): Promise<Principal | null> {
      const ae = tryAeTitle(input.aeTitle);
      const key = accountKey('device', ae ?? String(input.aeTitle ?? '').slice(0, 16));
      const locked = await lockedUntil(key, input.source);
      let principal: Principal | null = null;
      let reason = 'bad-credentials';
      if (locked) {
        reason = 'locked';
      } else {
        const device = ae ? await repo.findDeviceByAeTitle(ae) : null;
        const pc = typeof input.passcode === 'string' ? input.passcode : '';
        const valid = device?.passcodeHash ? await verifyPassword(pc, device.passcodeHash) : (await burnPasswordCheck(pc), false);
        if (valid && device && !device.disabled) {
          await lockout.recordSuccess(key);
          principal = toPrincipal('device', device, await repo.bindingsOf('device', device.id), input.source);
        } else {
          await lockout.recordFailure(key, input.source);
        }
      }
      // (Success: the association's row records it. Failure: here, with its reason.)
      if (!principal) await ctx.audit.record({
        action: 'login',
        outcome: reason === 'locked' ? 'denied' : 'failure',
        principal: principal ? actorOf(principal) : null,
        source: input.source,
        details: principal ? { method: 'passcode' } : { method: 'passcode', name: String(input.aeTitle ?? '').slice(0, 16), reason },
      });
      return principal;
    },

    /**
     * A TLS client certificate (already verified against Tresor's CA by the TLS stack)
     * plus the calling AE title: the certificate must be the one bound to that device,
     * not revoked, and the device enabled.
     */
    async authenticateDeviceCertificate(input: { fingerprint256: string; callingAe: string; source?: string }): Promise<Principal | null> {
      const fp = normalizeFingerprint(input.fingerprint256);
      const ae = tryAeTitle(input.callingAe);
      let reason: string | null = null;
      let principal: Principal | null = null;
      if (!fp) reason = 'bad-fingerprint';
      else {
        // Revocation list, device and roles in one read, fresh (see certificateLogin).
        const { revoked, device, bindings } = await repo.certificateLogin(fp);
        if (revoked) reason = 'certificate-revoked';
        else if (!device) reason = 'unknown-certificate';
        else if (device.disabled) reason = 'device-disabled';
        else if (device.aeTitle !== ae) reason = 'ae-title-mismatch';
        else if (device.certNotAfter && new Date(device.certNotAfter) < ctx.now()) reason = 'certificate-expired';
        else principal = toPrincipal('device', device, bindings, input.source);
      }
      // (Success: the association's row records it. Failure: here, with its reason.)
      if (!principal) await ctx.audit.record({
        action: 'login',
        outcome: 'failure',
        principal: principal ? actorOf(principal) : null,
        source: input.source,
        details: principal ? { method: 'certificate' } : { method: 'certificate', name: String(input.callingAe ?? '').slice(0, 16), reason },
      });
      return principal;
    },

    sessionForClaims,

    /** Writes one summary row per source for the anonymous token refusals held back since the last flush. */
    async flushTokenRefusals(): Promise<void> {
      for (const { source, suppressed } of refusals.drain()) {
        await ctx.audit.recordAfter({ action: 'token.refused', outcome: 'denied', source: source === 'unknown' ? undefined : source, details: { reason: 'suppressed', suppressed } });
      }
    },

    /** Audits a refused bearer token (signature, expiry, disabled account, ...). */
    async recordTokenRefusal(reason: string, source?: string): Promise<void> {
      await auditRefusal(reason, source);
    },

    /** DIMSE JWT user identity (PS3.7 D.3.3.7, type 5), or any non-HTTP caller. */
    async authenticateAccessToken(jwt: string, source?: string): Promise<Principal | null> {
      let claims: AccessClaims;
      try {
        claims = await ctx.tokens.verify(jwt);
      } catch (e) {
        await auditRefusal((e as { reason?: string }).reason ?? 'invalid-token', source);
        return null;
      }
      const session = await sessionForClaims(claims, source);
      if (!session || session.mustChangePassword) {
        await auditRefusal(session ? 'password-change-required' : 'account-unusable', source);
        return null;
      }
      return session.principal;
    },

    /**
     * POST /auth/password: the current password again (so a stolen token alone cannot take
     * the account over), the rules for the new one; every earlier token stops working.
     */
    async changePassword(principal: Principal, input: { currentPassword: string; newPassword: string }): Promise<IssuedToken> {
      if (principal.kind !== 'user') throw forbidden('not-a-user', 'only users have passwords');
      const check = await checkUserPassword(principal.name, input.currentPassword, principal.source);
      if (!check.ok) {
        await ctx.audit.record({ action: 'password.change', outcome: check.reason === 'locked' ? 'denied' : 'failure', principal: actorOf(principal), source: principal.source, details: { reason: check.reason } });
        if (check.reason === 'locked') throw lockedError(check.lockedUntil);
        throw unauthenticated('bad-credentials', 'the current password is wrong');
      }
      checkPasswordRules(input.newPassword, { accountName: check.user.username });
      if (input.newPassword === input.currentPassword) throw invalid('weak-password', 'the new password must differ from the current one');
      await repo.updateUser(check.user.id, { passwordHash: await hashPassword(input.newPassword), mustChangePassword: false, bumpGeneration: true });
      await removeInitialPasswordFile(ctx.initialPasswordFile, input.currentPassword);
      await ctx.audit.record({ action: 'password.change', outcome: 'success', principal: actorOf(principal), source: principal.source });
      const user = await repo.findUserById(check.user.id);
      if (!user) throw unauthenticated('account-unusable', 'the account no longer exists');
      return issueFor(user);
    },

    /** The device to send C-MOVE results to: only a configured, enabled destination. */
    async moveDestination(aeTitle: string): Promise<{ principal: Principal; host: string; port: number; fingerprint256?: string } | null> {
      const ae = tryAeTitle(aeTitle);
      const device = ae ? await repo.findDeviceByAeTitle(ae) : null;
      if (!device || device.disabled || !device.host || !device.port) return null;
      // The destination must present its current certificate: pinned by fingerprint, so a
      // replaced (revoked) certificate of that device is refused too.
      return {
        principal: toPrincipal('device', device, await repo.bindingsOf('device', device.id)),
        host: device.host,
        port: device.port,
        ...(device.certFingerprint ? { fingerprint256: device.certFingerprint } : {}),
      };
    },
  };
}

/** The bootstrap password file is deleted once the password in it is no longer valid. */
async function removeInitialPasswordFile(file: string | undefined, oldPassword: string): Promise<void> {
  if (!file) return;
  try {
    const content = (await readFile(file, 'utf8')).trim();
    if (content === oldPassword) await rm(file, { force: true });
  } catch {
    // absent or unreadable: nothing to clean up
  }
}

export type Authentication = ReturnType<typeof createAuthentication>;

// Browser sessions for the console and the viewer (issue 9; README "Browser sessions").
// One origin and one server: a server-side session behind an HttpOnly cookie is the
// simplest thing that keeps every credential out of page scripts, URLs and storage, and
// can be ended at once (logout, disable, password change), which a self-contained token
// cannot. The cookie carries a random 256-bit id; only its SHA-256 is stored, so a copy
// of the database holds no usable session. Each request re-reads the account exactly
// as a bearer token does (sessionForClaims): disable and role changes act at once.
//
// Lifetimes follow OWASP's session management guidance: an idle timeout (activity moves
// it; written at most once a minute so a viewer's burst of frame fetches costs no
// writes) and an absolute lifetime that activity does not extend.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { actorOf, toPrincipal, type IdentityContext } from './context.js';
import type { Session } from './auth.js';
import type { BindingRecord, UserRecord } from './types.js';
import { unauthenticated } from '../errors.js';

export interface BrowserSessionRecord {
  idHash: string;
  userId: number;
  tokenGeneration: number;
  csrfToken: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

/** Storage of browser sessions (db/browser-session.repo.ts). */
export interface BrowserSessionRepo {
  insert(r: BrowserSessionRecord): Promise<void>;
  find(idHash: string): Promise<BrowserSessionRecord | null>;
  touch(idHash: string, at: Date): Promise<void>;
  /** False when there was no such row. */
  delete(idHash: string): Promise<boolean>;
  /** Removes sessions past their absolute end or idle since `idleBefore`; returns how many. */
  prune(now: Date, idleBefore: Date): Promise<number>;
}

export interface SessionPolicy {
  idleSeconds: number;
  maxSeconds: number;
}

/** What the console is told about its session (GET /auth/session). */
export interface SessionView {
  user: {
    username: string;
    globalAdmin: boolean;
    mustChangePassword: boolean;
    roles: { department: string; role: string }[];
  };
  csrfToken: string;
  idleTimeoutSeconds: number;
  expiresAt: string;
}

/** A live browser session, resolved from its cookie for one request. */
export interface ResolvedBrowserSession extends Session {
  /** The stored key (SHA-256 of the cookie value): for logout; never logged or audited. */
  readonly idHash: string;
  readonly csrfToken: string;
  view(): SessionView;
}

export interface StartedBrowserSession {
  /** The cookie value: returned once, stored nowhere. */
  cookieValue: string;
  view: SessionView;
}

/** 32 random bytes as base64url (43 characters). */
const COOKIE_VALUE_RE = /^[A-Za-z0-9_-]{43}$/;
const hashId = (id: string): string => createHash('sha256').update(id, 'utf8').digest('hex');

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfTokenMatches(expected: string, presented: string | undefined): boolean {
  if (typeof presented !== 'string') return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(presented).digest();
  return timingSafeEqual(a, b);
}

function viewOf(user: UserRecord, bindings: readonly BindingRecord[], r: BrowserSessionRecord, policy: SessionPolicy): SessionView {
  return {
    user: {
      username: user.username,
      globalAdmin: user.globalAdmin,
      mustChangePassword: user.mustChangePassword,
      roles: bindings.filter((b) => !b.departmentDisabled).map((b) => ({ department: b.departmentName, role: b.role })),
    },
    csrfToken: r.csrfToken,
    idleTimeoutSeconds: policy.idleSeconds,
    expiresAt: r.expiresAt.toISOString(),
  };
}

export function createBrowserSessions(ctx: IdentityContext, repo: BrowserSessionRepo, policy: SessionPolicy) {
  // "At most once a minute", but at least twice per idle period so short test timeouts work.
  const touchEveryMs = Math.min(60_000, (policy.idleSeconds * 1000) / 2);
  let lastPrune = 0;

  async function pruneNow(now: Date): Promise<void> {
    if (now.getTime() - lastPrune < 60_000) return;
    lastPrune = now.getTime();
    await repo.prune(now, new Date(now.getTime() - policy.idleSeconds * 1000));
  }

  /** A new session for a user who just proved their password (login, password change). */
  async function start(userId: number, source: string | undefined, method: 'password' | 'password-change'): Promise<StartedBrowserSession> {
    const user = await ctx.repo.findUserById(userId);
    if (!user || user.disabled) throw unauthenticated('account-unusable', 'the account is disabled or gone: ask an administrator');
    const now = ctx.now();
    await pruneNow(now);
    const cookieValue = randomBytes(32).toString('base64url');
    const record: BrowserSessionRecord = {
      idHash: hashId(cookieValue),
      userId: user.id,
      tokenGeneration: user.tokenGeneration,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: now,
      lastSeenAt: now,
      expiresAt: new Date(now.getTime() + policy.maxSeconds * 1000),
    };
    await repo.insert(record);
    const bindings = await ctx.repo.bindingsOf('user', user.id);
    const principal = toPrincipal('user', user, bindings, source);
    await ctx.audit.record({ action: 'session.start', outcome: 'success', principal: actorOf(principal), source, details: { method } });
    return { cookieValue, view: viewOf(user, bindings, record, policy) };
  }

  /** Ends a session that is found dead on use, once, with its reason in the audit trail. */
  async function expire(r: BrowserSessionRecord, reason: string, source: string | undefined, user: UserRecord | null): Promise<void> {
    if (!(await repo.delete(r.idHash))) return;
    await ctx.audit.record({
      action: 'session.end',
      outcome: 'success',
      principal: user ? { kind: 'user', id: user.id, name: user.username } : null,
      source,
      details: { reason },
    });
  }

  return {
    policy,
    start,

    /**
     * The session behind a cookie value, or null (unknown, ended, idle too long, past its
     * absolute end, account disabled or gone, password changed since login).
     */
    async resolve(cookieValue: string, source?: string): Promise<ResolvedBrowserSession | null> {
      if (!COOKIE_VALUE_RE.test(cookieValue)) return null;
      const r = await repo.find(hashId(cookieValue));
      if (!r) return null;
      const now = ctx.now();
      // The account and its roles in one statement (issue 13: every viewer request comes through here).
      const { account, bindings } = await ctx.repo.accountRead('user', r.userId);
      const user = account && 'username' in account ? account : null;
      const dead =
        now >= r.expiresAt ? 'max-lifetime'
        : now.getTime() - r.lastSeenAt.getTime() >= policy.idleSeconds * 1000 ? 'idle'
        : !user || user.disabled || user.tokenGeneration !== r.tokenGeneration ? 'account-unusable'
        : null;
      if (dead || !user) {
        await expire(r, dead ?? 'account-unusable', source, user);
        return null;
      }
      if (now.getTime() - r.lastSeenAt.getTime() >= touchEveryMs) await repo.touch(r.idHash, now);
      const principal = toPrincipal('user', user, bindings, source);
      return {
        principal,
        mustChangePassword: user.mustChangePassword,
        idHash: r.idHash,
        csrfToken: r.csrfToken,
        view: () => viewOf(user, bindings, r, policy),
      };
    },

    /** Logout: the row goes, so the cookie is worthless everywhere at once. */
    async end(session: ResolvedBrowserSession, reason: 'logout' | 'password-change' = 'logout'): Promise<void> {
      await repo.delete(session.idHash);
      await ctx.audit.record({ action: 'session.end', outcome: 'success', principal: actorOf(session.principal), source: session.principal.source, details: { reason } });
    },
  };
}

export type BrowserSessions = ReturnType<typeof createBrowserSessions>;

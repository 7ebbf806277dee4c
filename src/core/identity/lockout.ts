// Lockout after repeated login failures, counted separately per
// account ('user:alice', 'device:CT1') and per remote address ('addr:10.0.0.7').
// The state lives in the database (db/lockout.repo.ts) so it holds across restarts
// and across several server processes; each update is one row-locked transaction.
// While locked, every attempt is refused whatever the password, and the lock grows:
// base × 2^(locks − 1), up to a day (OWASP Authentication Cheat Sheet, account lockout).

export interface LockoutState {
  failures: number;
  windowStart: Date;
  lockCount: number;
  lockedUntil: Date | null;
}

export interface LockoutRepo {
  get(keys: readonly string[]): Promise<Map<string, LockoutState>>;
  /** Reads the row under a lock, applies `fn` and writes the result (null deletes the row). */
  update(key: string, fn: (s: LockoutState | null) => LockoutState | null): Promise<LockoutState | null>;
  /** Deletes rows with no failure and no lock since `before`. */
  prune(before: Date): Promise<number>;
}

export interface LockoutPolicy {
  /** Failures of one account within the window that trigger a lock. */
  accountThreshold: number;
  /** Failures from one address within the window (higher: several people behind one NAT). */
  addressThreshold: number;
  windowMs: number;
  /** First lock; each further lock doubles it. */
  baseLockMs: number;
  maxLockMs: number;
  /** Quiet time after which the lock count starts again from zero. */
  forgetAfterMs: number;
}

export const DEFAULT_LOCKOUT_POLICY: Readonly<LockoutPolicy> = Object.freeze({
  accountThreshold: 5,
  addressThreshold: 20,
  windowMs: 15 * 60_000,
  baseLockMs: 5 * 60_000,
  maxLockMs: 24 * 60 * 60_000,
  forgetAfterMs: 24 * 60 * 60_000,
});

export const accountKey = (kind: 'user' | 'device', name: string): string => `${kind}:${name}`;
const addressKey = (address: string): string => `addr:${address}`;

/** The state after one more failure (pure, so the growth is unit-tested without a database). */
export function afterFailure(s: LockoutState | null, threshold: number, policy: LockoutPolicy, now: Date): LockoutState {
  const t = now.getTime();
  let state: LockoutState = s ?? { failures: 0, windowStart: now, lockCount: 0, lockedUntil: null };
  // A long quiet period forgets earlier locks; an expired window restarts the count.
  const lastActivity = Math.max(state.windowStart.getTime(), state.lockedUntil?.getTime() ?? 0);
  if (t - lastActivity > policy.forgetAfterMs) state = { failures: 0, windowStart: now, lockCount: 0, lockedUntil: null };
  else if (t - state.windowStart.getTime() > policy.windowMs) state = { ...state, failures: 0, windowStart: now };
  // Attempts made while locked are refused before the password is checked and do not
  // count: otherwise an attacker could keep a victim locked forever at no cost.
  if (state.lockedUntil && state.lockedUntil.getTime() > t) return state;
  const failures = state.failures + 1;
  if (failures < threshold) return { ...state, failures };
  const lockCount = state.lockCount + 1;
  const duration = Math.min(policy.baseLockMs * 2 ** Math.min(lockCount - 1, 30), policy.maxLockMs);
  return { failures: 0, windowStart: now, lockCount, lockedUntil: new Date(t + duration) };
}

export interface Lockout {
  /** The latest time any of `keys` stays locked until, or null when none is locked now. */
  lockedUntil(keys: readonly string[]): Promise<Date | null>;
  /** Counts one failure for the account key and for the address key. */
  recordFailure(account: string, address: string | undefined): Promise<void>;
  /** A success clears the account's counters (never the address's: see below). */
  recordSuccess(account: string): Promise<void>;
  /** An administrator's decision: the account's counters and lock are cleared (not the address's). */
  unlock(account: string): Promise<void>;
  prune(): Promise<number>;
}

export function createLockout(repo: LockoutRepo, policy: LockoutPolicy, now: () => Date): Lockout {
  return {
    async lockedUntil(keys) {
      const t = now().getTime();
      let latest: Date | null = null;
      for (const s of (await repo.get(keys)).values()) {
        if (s.lockedUntil && s.lockedUntil.getTime() > t && (!latest || s.lockedUntil > latest)) latest = s.lockedUntil;
      }
      return latest;
    },
    async recordFailure(account, address) {
      const at = now();
      await repo.update(account, (s) => afterFailure(s, policy.accountThreshold, policy, at));
      if (address) await repo.update(addressKey(address), (s) => afterFailure(s, policy.addressThreshold, policy, at));
    },
    async recordSuccess(account) {
      // The address counter is left alone: an attacker holding one valid account must not
      // be able to reset the per-address count between guesses at other accounts.
      await repo.update(account, (s) => (s && s.lockedUntil && s.lockedUntil > now() ? s : null));
    },
    async unlock(account) {
      await repo.update(account, () => null);
    },
    prune: () => repo.prune(new Date(now().getTime() - policy.forgetAfterMs)),
  };
}

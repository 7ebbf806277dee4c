// Identity: departments, users, devices, role bindings, credentials, lockout, tokens and
// the first admin. One object for the front doors and main.ts, built from the repositories
// and the ports (TokenService over a TokenKeyStore, an optional CertificateIssuer); the
// parts live beside it in core/identity/, this file wires them and holds the bootstrap.

import { writeFileAtomic } from '../../lib/fs-atomic.js';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { AuditLog } from '../audit.js';
import { invalid } from '../errors.js';
import { createAdministration, type Administration } from './admin.js';
import { createAuthentication, type Authentication } from './auth.js';
import { createBrowserSessions, type BrowserSessionRepo, type BrowserSessions, type SessionPolicy } from './browser-sessions.js';
import type { IdentityContext } from './context.js';
import { createRecheck, type RecheckPrincipal } from './recheck.js';
import { createLockout, DEFAULT_LOCKOUT_POLICY, type LockoutPolicy, type LockoutRepo } from './lockout.js';
import type { TokenService } from './tokens.js';
import type { IdentityRepo } from './types.js';
import { checkPasswordRules, generatePassword, hashPassword } from './passwords.js';
import type { CertificateIssuer } from '../ports/certificate-issuer.js';

export type { Session, IssuedToken } from './auth.js';
export type { BrowserSessions, ResolvedBrowserSession, SessionView, SessionPolicy } from './browser-sessions.js';
export type { RoleInput } from './admin.js';
export type { HeldCredential, RecheckResult, RevocationReason } from './recheck.js';

/** File holding a generated bootstrap password (ARCHITECTURE.md, "Interfaces"). */
export const INITIAL_ADMIN_PASSWORD_FILE = 'initial-admin-password';
const BOOTSTRAP_USERNAME = 'admin';

export interface IdentityOptions {
  repo: IdentityRepo;
  lockouts: LockoutRepo;
  audit: AuditLog;
  tokens: TokenService;
  /** Issues device certificates (pki/certificate-issuer.ts); absent: none can be issued. */
  certificates?: CertificateIssuer;
  /** The data directory: where the bootstrap password file is written and removed. */
  dataDir?: string;
  lockoutPolicy?: Partial<LockoutPolicy>;
  /** Browser sessions (console, viewer); absent: none can be started. */
  browserSessions?: { repo: BrowserSessionRepo; policy: SessionPolicy };
  now?: () => Date;
}

export type Identity = Authentication & {
  admin: Administration;
  tokens: TokenService;
  /** Cookie sessions of the console and viewer; null when not configured. */
  sessions: BrowserSessions | null;
  /** An earlier authentication still holds (open DIMSE associations, before each request). */
  recheckPrincipal: RecheckPrincipal;
  /** Deletes lockout rows that have been quiet for a day (call now and then). */
  pruneLockouts(): Promise<number>;
  bootstrapAdmin(opts: { adminPassword?: string }): Promise<BootstrapResult>;
};

export function createIdentity(opts: IdentityOptions): Identity {
  const now = opts.now ?? (() => new Date());
  const policy = { ...DEFAULT_LOCKOUT_POLICY, ...opts.lockoutPolicy };
  const lockout = createLockout(opts.lockouts, policy, now);
  const initialPasswordFile = opts.dataDir ? path.join(opts.dataDir, INITIAL_ADMIN_PASSWORD_FILE) : undefined;
  const ctx: IdentityContext = { repo: opts.repo, audit: opts.audit, lockout, tokens: opts.tokens, certificates: opts.certificates, now, initialPasswordFile };
  return {
    ...createAuthentication(ctx),
    admin: createAdministration(ctx),
    tokens: opts.tokens,
    sessions: opts.browserSessions ? createBrowserSessions(ctx, opts.browserSessions.repo, opts.browserSessions.policy) : null,
    recheckPrincipal: createRecheck(ctx),
    pruneLockouts: () => lockout.prune(),
    bootstrapAdmin: (b) => bootstrap(ctx, opts.dataDir, b),
  };
}

export type BootstrapResult =
  | { created: false }
  | { created: true; username: string; mustChangePassword: boolean; passwordFile?: string };

/**
 * The first start on an empty users table creates `admin`, a global admin: with
 * TRESOR_ADMIN_PASSWORD when the operator chose one (no change required), otherwise with
 * a random password written to <dataDir>/initial-admin-password (mode 0600) that must be
 * changed before the account can do anything else. No other default account exists.
 * The password is never logged; main.ts logs the file name from the result.
 */
async function bootstrap(ctx: IdentityContext, dataDir: string | undefined, opts: { adminPassword?: string }): Promise<BootstrapResult> {
  if ((await ctx.repo.countUsers()) > 0) return { created: false };
  const chosen = opts.adminPassword;
  if (chosen !== undefined) checkPasswordRules(chosen, { accountName: BOOTSTRAP_USERNAME });
  else if (!dataDir) throw invalid('no-data-dir', 'a generated admin password needs a data directory to be written to');
  const password = chosen ?? generatePassword();
  const file = chosen === undefined && dataDir ? path.join(dataDir, INITIAL_ADMIN_PASSWORD_FILE) : undefined;
  // The file first: if the insert then loses a race with another process, or fails, the
  // file is removed; the reverse order could leave an account whose password nobody has.
  if (file) {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, `${password}\n`, 0o600);
  }
  let user;
  try {
    user = await ctx.repo.createFirstUser({ username: BOOTSTRAP_USERNAME, passwordHash: await hashPassword(password), mustChangePassword: chosen === undefined });
  } catch (e) {
    if (file) await rm(file, { force: true });
    throw e;
  }
  if (!user) {
    if (file) await rm(file, { force: true });
    return { created: false };
  }
  await ctx.audit.record({
    action: 'bootstrap.admin',
    outcome: 'success',
    principal: { kind: 'system', id: 0, name: 'tresor' },
    details: { username: BOOTSTRAP_USERNAME, generated: chosen === undefined },
  });
  return { created: true, username: BOOTSTRAP_USERNAME, mustChangePassword: chosen === undefined, passwordFile: file };
}


// Names of departments, users and devices, defined here once and checked at the core
// boundary, so the same rules hold for the admin API (whose JSON schemas take the
// *_PATTERN strings), the CLI, config.ts, STOW's `department=` and the DIMSE door. The
// core trims surrounding spaces before matching; the schemas match the raw value.

import { isIP } from 'node:net';
import { invalid } from '../errors.js';

/**
 * ASCII letters of either case, digits and `._@-`, 1-64. Matched before lower-casing (so
 * a character that lower-cases into ASCII, like U+212A KELVIN SIGN, is refused, not
 * folded into `k`), then lower-cased: 'Alice' and 'alice' are one account.
 */
export const USERNAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$';
export const DEPARTMENT_PATTERN = '^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$';
/** PS3.5 §6.2, VR AE: default repertoire without backslash (0x5C) and control characters, 16 at most. */
export const AE_TITLE_PATTERN = '^[\\x20-\\x5b\\x5d-\\x7e]{1,16}$';

// The `u` flag is how Ajv compiles JSON-schema patterns: one meaning on both sides.
const USERNAME_RE = new RegExp(USERNAME_PATTERN, 'u');
export const DEPARTMENT_RE = new RegExp(DEPARTMENT_PATTERN, 'u');
export const AE_TITLE_RE = new RegExp(AE_TITLE_PATTERN, 'u');

export function normalizeUsername(username: string): string {
  const u = tryUsername(username);
  if (u === null) {
    throw invalid('bad-username', 'a username is 1-64 letters, digits, dots, dashes, underscores or @, starting with a letter or digit');
  }
  return u;
}

/** The same normalisation as normalizeUsername, but null instead of an error (login paths). */
export function tryUsername(username: unknown): string | null {
  if (typeof username !== 'string') return null;
  const u = username.trim();
  return USERNAME_RE.test(u) ? u.toLowerCase() : null;
}

export function normalizeDepartmentName(name: string): string {
  const n = typeof name === 'string' ? name.trim() : '';
  if (!DEPARTMENT_RE.test(n)) {
    throw invalid('bad-department-name', 'a department name is 1-64 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit');
  }
  return n;
}

/**
 * PS3.5 §6.2: leading and trailing spaces of an AE value are not significant, so they are
 * trimmed; what remains is 1-16 characters of the default repertoire, no backslash.
 */
export function normalizeAeTitle(aeTitle: string): string {
  const t = typeof aeTitle === 'string' ? aeTitle.trim() : '';
  if (!AE_TITLE_RE.test(t)) {
    throw invalid('bad-ae-title', 'an AE title is 1-16 printable characters without backslash, not all spaces (PS3.5 §6.2)');
  }
  return t;
}

export function tryAeTitle(aeTitle: unknown): string | null {
  if (typeof aeTitle !== 'string') return null;
  const t = aeTitle.trim();
  return AE_TITLE_RE.test(t) ? t : null;
}

/** A C-MOVE destination address: a DNS name or an IP address, and a TCP port. */
export function checkDestination(host: string | null | undefined, port: number | null | undefined): { host: string | null; port: number | null } {
  if ((host === null || host === undefined) && (port === null || port === undefined)) return { host: null, port: null };
  if (host === null || host === undefined || port === null || port === undefined) {
    throw invalid('bad-destination', 'host and port must be given together');
  }
  const h = host.trim().toLowerCase();
  const dns = h.length <= 253 && /^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/.test(h);
  if (!dns && isIP(h) === 0) throw invalid('bad-destination', 'host must be a DNS name or an IP address');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid('bad-destination', 'port must be 1-65535');
  return { host: h, port };
}

/** Lowercase hex SHA-256 without separators (the form stored in devices.cert_fingerprint). */
export function normalizeFingerprint(fp: string): string | null {
  if (typeof fp !== 'string') return null;
  const f = fp.replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(f) ? f : null;
}

/** The account created on the first start (ARCHITECTURE.md, "Interfaces"). */
export const BOOTSTRAP_USERNAME = 'admin';

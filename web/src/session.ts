// The browser session: who is logged in and what the console shows them. The server
// decides every permission; these helpers only hide what an account cannot use.

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { ApiError, request, setCsrfToken } from './api';

export type Role = 'reader' | 'writer' | 'admin';

export interface RoleBinding {
  department: string;
  role: Role;
}

export interface SessionUser {
  username: string;
  globalAdmin: boolean;
  mustChangePassword: boolean;
  roles: RoleBinding[];
}

export interface Session {
  user: SessionUser;
  csrfToken: string;
  idleTimeoutSeconds: number;
  expiresAt: string;
}

/** Why the login page is shown. */
export type LoginReason = 'start' | 'expired' | 'logged-out' | 'password-changed';

function accept(s: Session): Session {
  setCsrfToken(s.csrfToken);
  return s;
}

export async function logIn(username: string, password: string): Promise<Session> {
  const res = await request('POST', '/auth/session', { body: { username, password }, anonymous: true });
  return accept((await res.json()) as Session);
}

/** The session of this browser, or null (after a reload: the cookie is the only state). */
export async function currentSession(): Promise<Session | null> {
  try {
    const res = await request('GET', '/auth/session', { anonymous: true });
    return accept((await res.json()) as Session);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function logOut(): Promise<void> {
  try {
    await request('DELETE', '/auth/session', { anonymous: true });
  } finally {
    setCsrfToken(null);
  }
}

/** Changes the password; the server ends this session and answers a new one (new cookie, new CSRF token). */
export async function changePassword(currentPassword: string, newPassword: string): Promise<Session | null> {
  const res = await request('POST', '/auth/password', { body: { currentPassword, newPassword }, anonymous: true });
  const body = (await res.json()) as Partial<Session>;
  return body.csrfToken && body.user ? accept(body as Session) : null;
}

export const isAdmin = (u: SessionUser): boolean => u.globalAdmin || u.roles.some((r) => r.role === 'admin');
/** Departments this account administers (all of them for a global admin: see departments list). */
export const adminDepartments = (u: SessionUser): string[] => u.roles.filter((r) => r.role === 'admin').map((r) => r.department);
/** May delete studies somewhere (department admin or global admin); the server checks the study's department. */
export const mayDelete = isAdmin;

export interface SessionContextValue {
  session: Session;
  /** Ends the session (logout). */
  logOut(): Promise<void>;
  /** The session changed (password changed: new cookie and token). */
  replace(s: Session): void;
}

export const SessionContext = createContext<SessionContextValue | null>(null);

export function useSession(): SessionContextValue {
  const v = useContext(SessionContext);
  if (!v) throw new Error('useSession outside a session');
  return v;
}

/** A one-line description of an account's roles: "Radiology: admin, Cardiology: reader". */
export function describeRoles(u: { globalAdmin: boolean; roles: RoleBinding[] }): string {
  const parts = u.roles.map((r) => `${r.department}: ${r.role}`);
  if (u.globalAdmin) parts.unshift('global administrator');
  return parts.join(', ') || 'no roles';
}

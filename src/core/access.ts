// THE authorization point (ARCHITECTURE.md rule 3). Every decision about who may
// do what in which department is made here and nowhere else. Deny by default:
// an action that is not in the table below is refused for everyone but the
// global admin, and even the global admin cannot do an action that does not exist.

import { forbidden, notFound } from './errors.js';
import type { Principal, Role } from './principal.js';

export type Action =
  | 'read' // query and retrieve studies (C-FIND, C-GET, C-MOVE source, QIDO, WADO)
  | 'write' // store objects (C-STORE, STOW-RS)
  | 'delete' // delete studies, series, instances
  | 'manage'; // manage users, devices and role bindings of a department

export const ACTIONS: readonly Action[] = ['read', 'write', 'delete', 'manage'];

/** What each role allows inside its department. */
const ROLE_ACTIONS: Record<Role, readonly Action[]> = {
  reader: ['read'],
  writer: ['write'],
  admin: ['read', 'write', 'delete', 'manage'],
};

const isAction = (a: string): a is Action => (ACTIONS as readonly string[]).includes(a);

/** May `principal` do `action` on something that belongs to `departmentId`? */
export function can(principal: Principal, action: string, departmentId: number): boolean {
  if (!isAction(action)) return false;
  if (principal.globalAdmin) return true;
  return principal.roles.some((b) => b.departmentId === departmentId && ROLE_ACTIONS[b.role].includes(action));
}

/**
 * Throws unless allowed. For reads, a refusal is rendered as not-found so that the
 * existence of other departments' studies never leaks (rule 3); for other actions
 * the caller already proved it can see the target, so forbidden is honest.
 */
export function assertCan(principal: Principal, action: string, departmentId: number): void {
  if (can(principal, action, departmentId)) return;
  throw action === 'read' ? notFound() : forbidden();
}

/** Which departments `action` is allowed in: everything, or a (possibly empty) list. */
export type Scope = { all: true } | { all: false; departmentIds: readonly number[] };

export function scope(principal: Principal, action: string): Scope {
  if (!isAction(action)) return { all: false, departmentIds: [] };
  if (principal.globalAdmin) return { all: true };
  const ids = new Set<number>();
  for (const b of principal.roles) if (ROLE_ACTIONS[b.role].includes(action)) ids.add(b.departmentId);
  return { all: false, departmentIds: [...ids].sort((a, b) => a - b) };
}

/** True when the scope allows nothing at all: the principal may do the action in no department. */
export function isEmptyScope(s: Scope): boolean {
  return !s.all && s.departmentIds.length === 0;
}

/** Whether a role may be granted by `granter` in `departmentId` (no privilege escalation). */
export function canGrant(granter: Principal, role: Role, departmentId: number): boolean {
  if (granter.globalAdmin) return true;
  // Only a global admin grants admin; a department admin grants reader/writer in its own departments.
  if (role === 'admin') return false;
  return can(granter, 'manage', departmentId);
}

/** The role bindings of an account (user or device) that an administrator looks at. */
export interface AccountRoles {
  globalAdmin: boolean;
  roles: readonly { departmentId: number; role: Role }[];
}

/**
 * System administration: create, disable and delete departments, create global admins,
 * grant admin roles, read the whole audit trail. Only a global admin.
 */
export function canAdministerSystem(principal: Principal): boolean {
  return principal.globalAdmin;
}

/** Whether `principal` administers anything at all (may use the admin API). */
export function isAdministrator(principal: Principal): boolean {
  const s = scope(principal, 'manage');
  return s.all || s.departmentIds.length > 0;
}

/** May `principal` see this account? Only when it works in a department the principal manages. */
export function canSeeAccount(principal: Principal, account: AccountRoles): boolean {
  if (principal.globalAdmin) return true;
  return account.roles.some((b) => can(principal, 'manage', b.departmentId));
}

/**
 * May `principal` change this account as a whole (disable, delete, reset its password,
 * passcode or certificate)? A department admin may only when the account works nowhere
 * but in departments it manages and holds no admin power itself: otherwise one
 * department's admin could lock another department's staff out, or an equal out.
 */
export function canManageAccount(principal: Principal, account: AccountRoles): boolean {
  if (principal.globalAdmin) return true;
  if (account.globalAdmin || account.roles.length === 0) return false;
  return account.roles.every((b) => b.role !== 'admin' && can(principal, 'manage', b.departmentId));
}

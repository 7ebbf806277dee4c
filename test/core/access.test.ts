// core/access.ts: every role × every action, the shared matrix, scope, grants and the
// account-administration rules added for the admin API.

import { describe, expect, it } from 'vitest';
import {
  ACTIONS,
  assertCan,
  can,
  canAdministerSystem,
  canGrant,
  canManageAccount,
  canSeeAccount,
  isAdministrator,
  scope,
} from '../../src/core/access.js';
import { isTresorError } from '../../src/core/errors.js';
import { ROLES, systemPrincipal, type Principal, type Role } from '../../src/core/principal.js';
import { AUTHZ_MATRIX, GRANT_MATRIX, MATRIX_DEPARTMENTS, MATRIX_PRINCIPALS, type MatrixPrincipalName } from '../helpers/authz-matrix.js';

const DEPT_ID: Record<(typeof MATRIX_DEPARTMENTS)[number], number> = { cardiology: 1, radiology: 2 };

function matrixPrincipal(name: MatrixPrincipalName): Principal {
  const m = MATRIX_PRINCIPALS[name];
  return {
    kind: m.kind,
    id: 7,
    name,
    globalAdmin: m.globalAdmin,
    roles: m.roles.map((r) => ({ departmentId: DEPT_ID[r.department], role: r.role })),
  };
}

const user = (roles: [number, Role][], globalAdmin = false): Principal => ({
  kind: 'user',
  id: 1,
  name: 'u',
  globalAdmin,
  roles: roles.map(([departmentId, role]) => ({ departmentId, role })),
});

describe('access: the authorization matrix', () => {
  it('covers every principal, action and department', () => {
    expect(AUTHZ_MATRIX).toHaveLength(Object.keys(MATRIX_PRINCIPALS).length * ACTIONS.length * MATRIX_DEPARTMENTS.length);
  });

  it.each(AUTHZ_MATRIX)('$principal $action in $department → $expected', (c) => {
    const p = matrixPrincipal(c.principal);
    expect(can(p, c.action, DEPT_ID[c.department])).toBe(c.expected);
    const s = scope(p, c.action);
    expect(s.all || s.departmentIds.includes(DEPT_ID[c.department])).toBe(c.expected);
  });

  it.each(GRANT_MATRIX)('$granter grants $role in $department → $expected', (c) => {
    expect(canGrant(matrixPrincipal(c.granter), c.role, DEPT_ID[c.department])).toBe(c.expected);
  });
});

describe('access: each role and action', () => {
  const expected: Record<Role, string[]> = { reader: ['read'], writer: ['write'], admin: ['read', 'write', 'delete', 'manage'] };
  for (const role of ROLES) {
    for (const action of ACTIONS) {
      it(`${role} ${action}: own department ${expected[role].includes(action)}, other department false`, () => {
        const p = user([[1, role]]);
        expect(can(p, action, 1)).toBe(expected[role].includes(action));
        expect(can(p, action, 2)).toBe(false);
      });
    }
  }

  it('the global admin may do every action everywhere, but no unknown action', () => {
    const g = user([], true);
    for (const a of ACTIONS) expect(can(g, a, 42)).toBe(true);
    expect(can(g, 'drop-database', 1)).toBe(false);
    expect(scope(g, 'read')).toEqual({ all: true });
    expect(scope(g, 'nonsense')).toEqual({ all: false, departmentIds: [] });
  });

  it('unknown actions are denied for everyone', () => {
    expect(can(user([[1, 'admin']]), 'export', 1)).toBe(false);
    expect(can(user([[1, 'admin']]), '__proto__', 1)).toBe(false);
  });

  it('assertCan: a refused read is not-found (existence does not leak), other refusals are forbidden', () => {
    const p = user([[1, 'writer']]);
    const kindOf = (f: () => void) => {
      try {
        f();
        return 'allowed';
      } catch (e) {
        return isTresorError(e) ? e.kind : 'other';
      }
    };
    expect(kindOf(() => assertCan(p, 'read', 1))).toBe('not-found');
    expect(kindOf(() => assertCan(p, 'write', 1))).toBe('allowed');
    expect(kindOf(() => assertCan(p, 'write', 2))).toBe('forbidden');
    expect(kindOf(() => assertCan(p, 'delete', 1))).toBe('forbidden');
    expect(kindOf(() => assertCan(p, 'manage', 1))).toBe('forbidden');
  });

  it('scope lists the departments sorted and once', () => {
    const p = user([[3, 'reader'], [1, 'admin'], [3, 'writer']]);
    expect(scope(p, 'read')).toEqual({ all: false, departmentIds: [1, 3] });
    expect(scope(p, 'write')).toEqual({ all: false, departmentIds: [1, 3] });
    expect(scope(p, 'delete')).toEqual({ all: false, departmentIds: [1] });
    expect(scope(p, 'manage')).toEqual({ all: false, departmentIds: [1] });
  });
});

describe('access: administration of accounts', () => {
  const global = user([], true);
  const adminA = user([[1, 'admin']]);
  const readerA = user([[1, 'reader']]);

  it('only a global admin administers the system', () => {
    expect(canAdministerSystem(global)).toBe(true);
    expect(canAdministerSystem(systemPrincipal)).toBe(true);
    expect(canAdministerSystem(adminA)).toBe(false);
    expect(canAdministerSystem(readerA)).toBe(false);
  });

  it('an administrator is a global admin or an admin of some department', () => {
    expect(isAdministrator(global)).toBe(true);
    expect(isAdministrator(adminA)).toBe(true);
    for (const r of ['reader', 'writer'] as const) expect(isAdministrator(user([[1, r], [2, r]]))).toBe(false);
    expect(isAdministrator(user([]))).toBe(false);
  });

  it('canSeeAccount: accounts working in a department the admin manages', () => {
    const inA = { globalAdmin: false, roles: [{ departmentId: 1, role: 'reader' as Role }] };
    const inB = { globalAdmin: false, roles: [{ departmentId: 2, role: 'reader' as Role }] };
    const inAB = { globalAdmin: false, roles: [...inA.roles, ...inB.roles] };
    const nowhere = { globalAdmin: false, roles: [] };
    expect(canSeeAccount(adminA, inA)).toBe(true);
    expect(canSeeAccount(adminA, inAB)).toBe(true);
    expect(canSeeAccount(adminA, inB)).toBe(false);
    expect(canSeeAccount(adminA, nowhere)).toBe(false);
    expect(canSeeAccount(readerA, inA)).toBe(false);
    expect(canSeeAccount(global, nowhere)).toBe(true);
  });

  it('canManageAccount: only accounts entirely inside the admin’s departments and without admin power', () => {
    const r = (d: number, role: Role) => ({ departmentId: d, role });
    expect(canManageAccount(adminA, { globalAdmin: false, roles: [r(1, 'reader'), r(1, 'writer')] })).toBe(true);
    expect(canManageAccount(adminA, { globalAdmin: false, roles: [r(1, 'reader'), r(2, 'writer')] })).toBe(false);
    expect(canManageAccount(adminA, { globalAdmin: false, roles: [r(1, 'admin')] })).toBe(false);
    expect(canManageAccount(adminA, { globalAdmin: true, roles: [r(1, 'reader')] })).toBe(false);
    expect(canManageAccount(adminA, { globalAdmin: false, roles: [] })).toBe(false);
    expect(canManageAccount(readerA, { globalAdmin: false, roles: [r(1, 'reader')] })).toBe(false);
    expect(canManageAccount(global, { globalAdmin: true, roles: [] })).toBe(true);
  });
});

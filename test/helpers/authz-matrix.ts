// THE authorization matrix (ARCHITECTURE.md rule 9), as data: who (a role set), does
// what (an action of core/access.ts), in which department, and whether it is allowed.
// The expectations are written out by hand, not computed by access.ts, so the matrix
// checks the code rather than restating it. test/core/access.test.ts runs it through
// access.ts, test/http/admin.test.ts through the admin API where it applies (manage),
// and the DICOMweb and DIMSE test suites through their front doors:
//
//   import { MATRIX_DEPARTMENTS, MATRIX_PRINCIPALS, AUTHZ_MATRIX } from './authz-matrix.js';
//   for (const c of AUTHZ_MATRIX) { ...create MATRIX_PRINCIPALS[c.principal] with its roles,
//     do c.action in department c.department, expect allowed === c.expected }
//
// What "refused" looks like differs per door and per action (rule 3): a refused read is
// not-found (404, empty C-FIND, C-GET failure); a refused write is forbidden (403, C-STORE
// 0x0124 / 0xA700-family refusal as the DIMSE door defines).

import type { Action } from '../../src/core/access.js';
import type { Role } from '../../src/core/principal.js';

/** Two departments, so every case has an "own" and an "other" department. */
export const MATRIX_DEPARTMENTS = ['cardiology', 'radiology'] as const;
export type MatrixDepartment = (typeof MATRIX_DEPARTMENTS)[number];

export interface MatrixPrincipal {
  /** Users log in with a password (HTTP); devices connect with a certificate (DIMSE). */
  kind: 'user' | 'device';
  globalAdmin: boolean;
  roles: readonly { department: MatrixDepartment; role: Role }[];
}

export const MATRIX_PRINCIPALS = {
  /** A global admin with no department role: may do everything, everywhere. */
  'global-admin': { kind: 'user', globalAdmin: true, roles: [] },
  'cardiology-reader': { kind: 'user', globalAdmin: false, roles: [{ department: 'cardiology', role: 'reader' }] },
  'cardiology-writer': { kind: 'user', globalAdmin: false, roles: [{ department: 'cardiology', role: 'writer' }] },
  'cardiology-admin': { kind: 'user', globalAdmin: false, roles: [{ department: 'cardiology', role: 'admin' }] },
  /** Roles in two departments: reading in one, writing in the other, never crossed. */
  'cardiology-reader-radiology-writer': {
    kind: 'user',
    globalAdmin: false,
    roles: [
      { department: 'cardiology', role: 'reader' },
      { department: 'radiology', role: 'writer' },
    ],
  },
  /** A modality: stores into radiology, nothing else. */
  'radiology-modality': { kind: 'device', globalAdmin: false, roles: [{ department: 'radiology', role: 'writer' }] },
  /** A workstation device that queries and retrieves radiology. */
  'radiology-workstation': { kind: 'device', globalAdmin: false, roles: [{ department: 'radiology', role: 'reader' }] },
  /** Authenticated, but bound to nothing. */
  'no-roles': { kind: 'user', globalAdmin: false, roles: [] },
} as const satisfies Record<string, MatrixPrincipal>;

export type MatrixPrincipalName = keyof typeof MATRIX_PRINCIPALS;

export interface MatrixCase {
  principal: MatrixPrincipalName;
  action: Action;
  department: MatrixDepartment;
  expected: boolean;
}

const ALL_ACTIONS: readonly Action[] = ['read', 'write', 'delete', 'manage'];

/** What each principal may do, spelled out; everything not listed is refused. */
const ALLOWED: Record<MatrixPrincipalName, readonly `${Action}@${MatrixDepartment}`[]> = {
  'global-admin': [
    'read@cardiology', 'write@cardiology', 'delete@cardiology', 'manage@cardiology',
    'read@radiology', 'write@radiology', 'delete@radiology', 'manage@radiology',
  ],
  'cardiology-reader': ['read@cardiology'],
  'cardiology-writer': ['write@cardiology'],
  'cardiology-admin': ['read@cardiology', 'write@cardiology', 'delete@cardiology', 'manage@cardiology'],
  'cardiology-reader-radiology-writer': ['read@cardiology', 'write@radiology'],
  'radiology-modality': ['write@radiology'],
  'radiology-workstation': ['read@radiology'],
  'no-roles': [],
};

/** Every principal × every action × every department: 8 × 4 × 2 = 64 cases. */
export const AUTHZ_MATRIX: readonly MatrixCase[] = Object.freeze(
  (Object.keys(MATRIX_PRINCIPALS) as MatrixPrincipalName[]).flatMap((principal) =>
    ALL_ACTIONS.flatMap((action) =>
      MATRIX_DEPARTMENTS.map((department) => ({
        principal,
        action,
        department,
        expected: ALLOWED[principal].includes(`${action}@${department}`),
      })),
    ),
  ),
);

/** Cases a door can run: 'read' and 'write' (and 'delete' where the door deletes). */
export const casesFor = (actions: readonly Action[]): MatrixCase[] => AUTHZ_MATRIX.filter((c) => actions.includes(c.action));

/**
 * Granting roles through the admin API (no privilege escalation): may `granter` give
 * `role` in `department` to another account? Only a global admin grants admin; a
 * department admin grants reader and writer in its own departments; nobody else grants.
 */
export interface GrantCase {
  granter: MatrixPrincipalName;
  role: Role;
  department: MatrixDepartment;
  expected: boolean;
}

export const GRANT_MATRIX: readonly GrantCase[] = Object.freeze(
  (['global-admin', 'cardiology-admin', 'cardiology-reader', 'cardiology-writer', 'no-roles'] as const).flatMap((granter) =>
    (['reader', 'writer', 'admin'] as const).flatMap((role) =>
      MATRIX_DEPARTMENTS.map((department) => ({
        granter,
        role,
        department,
        expected: granter === 'global-admin' || (granter === 'cardiology-admin' && department === 'cardiology' && role !== 'admin'),
      })),
    ),
  ),
);

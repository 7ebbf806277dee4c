// Who is acting. Front doors build a Principal (http/auth.ts from a JWT,
// dimse/association.ts from a TLS certificate and/or user identity); the core
// only ever sees this. Roles are re-read from the database on every request or
// association, so disabling an account or changing roles takes effect at once.

export type Role = 'reader' | 'writer' | 'admin';
export const ROLES: readonly Role[] = ['reader', 'writer', 'admin'];

export interface RoleBinding {
  departmentId: number;
  role: Role;
}

export interface Principal {
  kind: 'user' | 'device' | 'system';
  /** Database id of the user or device (0 for the system principal). */
  id: number;
  /** Username or AE title: safe to log and audit (not patient data). */
  name: string;
  globalAdmin: boolean;
  roles: readonly RoleBinding[];
  /** Remote address of the connection, for audit and lockout. */
  source?: string;
}

/** The server itself, for start-up tasks (bootstrap, migrations). Never given to a request. */
export const systemPrincipal: Principal = Object.freeze({
  kind: 'system',
  id: 0,
  name: 'tresor',
  globalAdmin: true,
  roles: Object.freeze([]) as readonly RoleBinding[],
});

export const principalLabel = (p: Principal): string => `${p.kind}:${p.name}`;

// Argument parsers of the online commands: "DEPARTMENT:ROLE" ↔ the API's {department, role}; ports.

import { usageError } from './output.js';

export interface RoleArg {
  department: string;
  role: 'reader' | 'writer' | 'admin';
}

export function parseRole(s: string): RoleArg {
  const i = s.lastIndexOf(':');
  const department = s.slice(0, i);
  const role = s.slice(i + 1);
  if (i <= 0 || !['reader', 'writer', 'admin'].includes(role)) {
    throw usageError(`--role ${s}: expected DEPARTMENT:ROLE with ROLE one of reader, writer, admin`);
  }
  return { department, role: role as RoleArg['role'] };
}

/** Commander collector for a repeatable option. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export const rolesText = (roles: readonly RoleArg[]): string => (roles.length ? roles.map((r) => `${r.department}:${r.role}`).join(',') : '-');

export const parsePort = (s: string): number => {
  const n = Number(s);
  if (!/^\d{1,5}$/.test(s) || n < 1 || n > 65535) throw usageError(`port ${s}: expected 1–65535`);
  return n;
};

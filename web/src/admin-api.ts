// The admin API (openapi/openapi.yaml, src/http/routes/admin.ts) as the console uses it.
// The server decides who may do what; these are only the calls and their shapes.

import { getJson, request, sendJson, seg } from './api';
import type { Role, RoleBinding } from './session';

export interface Department {
  name: string;
  disabled: boolean;
  createdAt: string;
}

export interface User {
  username: string;
  globalAdmin: boolean;
  disabled: boolean;
  mustChangePassword: boolean;
  roles: RoleBinding[];
  createdAt: string;
}

export interface Device {
  aeTitle: string;
  disabled: boolean;
  roles: RoleBinding[];
  host: string | null;
  port: number | null;
  certificate: { fingerprint256: string; serialNumber: string | null; notAfter: string | null } | null;
  hasPasscode: boolean;
  createdAt: string;
}

export interface AuditEvent {
  id: number;
  at: string;
  principalKind: string;
  principalId: number | null;
  principalName: string | null;
  source: string | null;
  action: string;
  outcome: 'success' | 'failure' | 'denied';
  studyUids: string[];
  details: Record<string, unknown>;
  dicomEvent?: { code: string; meaning: string } | null;
}

export interface AuditVerification {
  ok: boolean;
  count: number;
  brokenAt?: number;
  reason?: string;
}

export const listDepartments = async () => (await getJson<{ departments: Department[] }>('/admin/departments')).departments;
export const createDepartment = (name: string) => sendJson<Department>('POST', '/admin/departments', { name });
export const setDepartmentDisabled = (name: string, disabled: boolean) => sendJson<Department>('PATCH', `/admin/departments/${seg(name)}`, { disabled });

export const listUsers = async () => (await getJson<{ users: User[] }>('/admin/users')).users;
export const createUser = (u: { username: string; password: string; roles: RoleBinding[]; globalAdmin?: boolean }) => sendJson<User>('POST', '/admin/users', u);
export const updateUser = (username: string, patch: { disabled?: boolean; password?: string; globalAdmin?: boolean }) =>
  sendJson<User>('PATCH', `/admin/users/${seg(username)}`, patch);
export const unlockUser = (username: string) => sendJson<User>('POST', `/admin/users/${seg(username)}/unlock`, {});
export const grantUserRole = (username: string, r: RoleBinding) => sendJson<User>('POST', `/admin/users/${seg(username)}/roles`, r);
export const revokeUserRole = (username: string, r: RoleBinding) =>
  sendJson<void>('DELETE', `/admin/users/${seg(username)}/roles/${seg(r.department)}/${seg(r.role)}`);

export const listDevices = async () => (await getJson<{ devices: Device[] }>('/admin/devices')).devices;
export const createDevice = (d: { aeTitle: string; roles: RoleBinding[]; host?: string | null; port?: number | null }) => sendJson<Device>('POST', '/admin/devices', d);
export const updateDevice = (aeTitle: string, patch: { disabled?: boolean; host?: string | null; port?: number | null }) =>
  sendJson<Device>('PATCH', `/admin/devices/${seg(aeTitle)}`, patch);
export const revokeCertificate = (aeTitle: string) => sendJson<void>('DELETE', `/admin/devices/${seg(aeTitle)}/certificate`);
export const setPasscode = (aeTitle: string, passcode: string) => sendJson<void>('PUT', `/admin/devices/${seg(aeTitle)}/passcode`, { passcode });
export const clearPasscode = (aeTitle: string) => sendJson<void>('DELETE', `/admin/devices/${seg(aeTitle)}/passcode`);

export interface BundleRequest {
  days?: number;
  /** ECDSA P-256 unless `rsa` (older devices that cannot use an EC key). */
  keyType?: 'ec' | 'rsa';
  edge?: { listen: string; allow: string[] };
}

/** Issues the device a new certificate (revoking the previous one) and answers the bundle ZIP. */
export const deviceBundle = (aeTitle: string, body: BundleRequest) =>
  request('POST', `/admin/devices/${seg(aeTitle)}/bundle`, { body, accept: 'application/zip' });

export const readAudit = (q: Record<string, string | undefined>) => getJson<{ events: AuditEvent[]; verification?: AuditVerification }>('/admin/audit', q);

export const ROLE_TEXT: Record<Role, string> = {
  reader: 'reader — views and downloads studies',
  writer: 'writer — sends studies (for modalities)',
  admin: 'admin — everything in the department, also users and devices',
};

/** Client-side copies of the server's name rules (src/core/identity/names.ts), for messages before sending. */
export const USERNAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
export const DEPARTMENT_RE = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;
export const AE_TITLE_RE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;

export function aeTitleProblem(ae: string): string | null {
  const t = ae.trim();
  if (!t) return 'Enter the AE title: it is set in the modality’s DICOM network settings.';
  if (!AE_TITLE_RE.test(t)) return 'An AE title is at most 16 characters: letters, digits, spaces and punctuation, but no backslash.';
  return null;
}

export function usernameProblem(u: string): string | null {
  const t = u.trim();
  if (!t) return 'Enter a user name.';
  if (!USERNAME_RE.test(t)) return 'A user name is 1–64 letters, digits, dots, dashes, underscores or @, starting with a letter or digit (no spaces).';
  return null;
}

export function departmentProblem(n: string): string | null {
  const t = n.trim();
  if (!t) return 'Enter a name for the department.';
  if (!DEPARTMENT_RE.test(t)) return 'A department name is 1–64 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit.';
  return null;
}

export function portProblem(host: string, port: string): string | null {
  if (!host.trim() && !port.trim()) return null;
  if (!host.trim()) return 'Enter the host too, or leave both host and port empty.';
  if (!/^\d{1,5}$/.test(port.trim()) || Number(port) < 1 || Number(port) > 65535) return 'The port is a number from 1 to 65535 (often 104 or 11112).';
  return null;
}

/** A random password for resets and new accounts: 16 characters the user will replace. */
export function randomPassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  // Rejection sampling: only bytes below a multiple of the alphabet size, so no letter is favoured.
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < 16) {
    for (const b of crypto.getRandomValues(new Uint8Array(32))) if (b < limit && out.length < 16) out += alphabet[b % alphabet.length];
  }
  return out;
}

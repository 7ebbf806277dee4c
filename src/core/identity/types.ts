// Records and the storage interface of core/identity. db/identity.repo.ts implements
// IdentityRepo with knex; the core never sees SQL (ARCHITECTURE.md rules 2 and 7).

import type { Role } from '../principal.js';

export type AccountKind = 'user' | 'device';

export interface DepartmentRecord {
  id: number;
  name: string;
  disabled: boolean;
  createdAt: string;
}

export interface BindingRecord {
  departmentId: number;
  departmentName: string;
  departmentDisabled: boolean;
  role: Role;
}

export interface UserRecord {
  id: number;
  username: string;
  passwordHash: string;
  globalAdmin: boolean;
  disabled: boolean;
  mustChangePassword: boolean;
  /** Bumped on password change, disable and delete: tokens carry it and older ones stop working. */
  tokenGeneration: number;
  passwordChangedAt: string;
  createdAt: string;
}

export interface DeviceRecord {
  id: number;
  aeTitle: string;
  certFingerprint: string | null;
  certSerial: string | null;
  certNotAfter: string | null;
  passcodeHash: string | null;
  host: string | null;
  port: number | null;
  disabled: boolean;
  createdAt: string;
}

export interface NewBinding {
  departmentId: number;
  role: Role;
}

export interface CertificateBinding {
  fingerprint: string;
  serial: string | null;
  notAfter: string | null;
}

/** Which accounts a listing may show: all, or those with a role in one of these departments. */
export type AccountFilter = { all: true } | { all: false; departmentIds: readonly number[] };

export interface IdentityRepo {
  // departments
  listDepartments(filter: AccountFilter): Promise<DepartmentRecord[]>;
  findDepartmentByName(name: string): Promise<DepartmentRecord | null>;
  /** Throws conflict('department-exists') when the name is taken (case-insensitively). */
  createDepartment(name: string): Promise<DepartmentRecord>;
  setDepartmentDisabled(id: number, disabled: boolean): Promise<void>;
  /** Throws conflict('department-not-empty') while studies belong to it. */
  deleteDepartment(id: number): Promise<void>;

  // users
  countUsers(): Promise<number>;
  findUserByName(username: string): Promise<UserRecord | null>;
  findUserById(id: number): Promise<UserRecord | null>;
  /** Throws conflict('user-exists'). */
  createUser(u: {
    username: string;
    passwordHash: string;
    globalAdmin: boolean;
    mustChangePassword: boolean;
    roles: readonly NewBinding[];
  }): Promise<UserRecord>;
  /**
   * Creates the first user only while the users table is empty (serialised across
   * processes); null when another user already exists.
   */
  createFirstUser(u: { username: string; passwordHash: string; mustChangePassword: boolean }): Promise<UserRecord | null>;
  listUsers(filter: AccountFilter): Promise<UserRecord[]>;
  updateUser(
    id: number,
    patch: { passwordHash?: string; mustChangePassword?: boolean; disabled?: boolean; globalAdmin?: boolean; bumpGeneration?: boolean },
  ): Promise<void>;
  deleteUser(id: number): Promise<void>;
  countEnabledGlobalAdmins(): Promise<number>;

  // devices
  findDeviceByAeTitle(aeTitle: string): Promise<DeviceRecord | null>;
  findDeviceById(id: number): Promise<DeviceRecord | null>;
  /**
   * What authenticating a certificate needs, read in one statement (one snapshot, one
   * round trip: it runs before every A-ASSOCIATE-AC): whether the fingerprint is revoked,
   * the device bound to it, and that device's role bindings.
   */
  certificateLogin(fingerprint: string): Promise<{ revoked: boolean; device: DeviceRecord | null; bindings: BindingRecord[] }>;
  /**
   * An account, its role bindings and, when given, the device of the certificate it
   * holds, in one statement (one snapshot, one round trip; cached on the embedded database
   * only until an account table changes, db/account-cache.ts): what every
   * authenticated request reads — a bearer token's or a browser session's account, and
   * the re-check before each DIMSE request (recheck.ts).
   */
  accountRead(kind: AccountKind, id: number, certDeviceId?: number): Promise<{ account: UserRecord | DeviceRecord | null; bindings: BindingRecord[]; certDevice: DeviceRecord | null }>;
  /** Throws conflict('device-exists'). */
  createDevice(d: { aeTitle: string; host: string | null; port: number | null; roles: readonly NewBinding[] }): Promise<DeviceRecord>;
  listDevices(filter: AccountFilter): Promise<DeviceRecord[]>;
  updateDevice(
    id: number,
    patch: { disabled?: boolean; passcodeHash?: string | null; host?: string | null; port?: number | null },
  ): Promise<void>;
  /**
   * Binds a new certificate (or none) to the device; the previous fingerprint, if any,
   * goes into revoked_certificates in the same transaction. Returns the revoked fingerprint.
   */
  replaceDeviceCertificate(id: number, cert: CertificateBinding | null): Promise<string | null>;
  /** Revokes the device's certificate, then deletes it (role bindings cascade). */
  deleteDevice(id: number): Promise<void>;

  // role bindings
  bindingsOf(kind: AccountKind, id: number): Promise<BindingRecord[]>;
  /** False when the binding already existed. */
  addBinding(kind: AccountKind, id: number, binding: NewBinding): Promise<boolean>;
  /** False when there was no such binding. */
  removeBinding(kind: AccountKind, id: number, binding: NewBinding): Promise<boolean>;
}

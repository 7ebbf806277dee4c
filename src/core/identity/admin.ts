// Management of departments, users, devices, role bindings, device credentials and the
// audit trail (the admin API). Every decision goes through core/access.ts; every
// change, and every refused attempt, is audited. A department admin sees only accounts
// that work in its departments: anything else is not found, so existence does not leak.

import { X509Certificate } from 'node:crypto';
import {
  canAdministerSystem,
  canGrant,
  canManageAccount,
  canSeeAccount,
  isAdministrator,
  scope,
  type AccountRoles,
} from '../access.js';
import { auditedRun, type AuditFilter, type AuditRow, type VerifyResult } from '../audit.js';
import { conflict, forbidden, invalid, notFound, unavailable, type TresorError } from '../errors.js';
import { actorOf, type IdentityContext } from './context.js';
import { checkDestination, normalizeAeTitle, normalizeDepartmentName, normalizeUsername } from './names.js';
import type {
  AccountFilter,
  AccountKind,
  BindingRecord,
  DepartmentRecord,
  DeviceRecord,
  NewBinding,
  UserRecord,
} from './types.js';
import { accountKey } from './lockout.js';
import { checkPasswordRules, generatePassword, hashPassword } from './passwords.js';
import { ROLES, type Principal, type Role } from '../principal.js';

export interface RoleView {
  department: string;
  role: Role;
}

export interface DepartmentView {
  name: string;
  disabled: boolean;
  createdAt: string;
}

export interface UserView {
  username: string;
  globalAdmin: boolean;
  disabled: boolean;
  mustChangePassword: boolean;
  roles: RoleView[];
  createdAt: string;
}

export interface DeviceView {
  aeTitle: string;
  disabled: boolean;
  roles: RoleView[];
  host: string | null;
  port: number | null;
  certificate: { fingerprint256: string; serialNumber: string | null; notAfter: string | null } | null;
  hasPasscode: boolean;
  createdAt: string;
}

export interface IssuedCertificateView {
  certificate: string;
  /** Only when Tresor generated the key; shown this once and never stored. */
  privateKey?: string;
  ca: string;
  fingerprint256: string;
  serialNumber: string;
  notAfter: string;
}

export interface RoleInput {
  department: string;
  role: Role;
}

/** Roles a device may hold: a device stores or queries, it never administers. */
const DEVICE_ROLES: readonly Role[] = ['reader', 'writer'];

/**
 * What the caller gets for something it may not see: exactly the not-found of something
 * that does not exist (same reason, same message), recorded in the audit trail as a denial.
 */
const hidden = (message: string): TresorError => notFound('not-found', message, { hidden: true });

export function createAdministration(ctx: IdentityContext) {
  const { repo } = ctx;

  // One row per administrative operation, through the core's one helper (core/audit.ts);
  // an admin change without its row is refused (strict), like an association.
  const audited = <T>(actor: Principal, action: string, details: Record<string, unknown>, fn: () => Promise<T>): Promise<T> =>
    auditedRun(
      ctx.audit,
      { action, principal: actorOf(actor), source: actor.source, details: { via: 'admin' } },
      (note) => {
        note.details = details; // by reference: an operation may add to it (the certificate it issued)
        return fn();
      },
      { strict: true },
    );

  function requireAdministrator(actor: Principal): void {
    if (!isAdministrator(actor)) throw forbidden('not-an-administrator', 'administrator role required');
  }

  function requireSystem(actor: Principal): void {
    if (!canAdministerSystem(actor)) throw forbidden('global-admin-required', 'only a global administrator may do this');
  }

  /** Listings: everything for a global admin, else the departments the actor manages. */
  function visibleFilter(actor: Principal): AccountFilter {
    const s = scope(actor, 'manage');
    return s.all ? { all: true } : { all: false, departmentIds: s.departmentIds };
  }

  const rolesOf = (bindings: readonly BindingRecord[]): AccountRoles['roles'] => bindings.map((b) => ({ departmentId: b.departmentId, role: b.role }));

  /** Bindings shown to the actor: a department admin does not learn about other departments. */
  function roleViews(actor: Principal, bindings: readonly BindingRecord[]): RoleView[] {
    const s = scope(actor, 'manage');
    return bindings
      .filter((b) => s.all || s.departmentIds.includes(b.departmentId))
      .map((b) => ({ department: b.departmentName, role: b.role }))
      .sort((a, b) => a.department.localeCompare(b.department) || a.role.localeCompare(b.role));
  }

  const departmentView = (d: DepartmentRecord): DepartmentView => ({ name: d.name, disabled: d.disabled, createdAt: d.createdAt });

  const userView = (actor: Principal, u: UserRecord, bindings: readonly BindingRecord[]): UserView => ({
    username: u.username,
    globalAdmin: u.globalAdmin,
    disabled: u.disabled,
    mustChangePassword: u.mustChangePassword,
    roles: roleViews(actor, bindings),
    createdAt: u.createdAt,
  });

  const deviceView = (actor: Principal, d: DeviceRecord, bindings: readonly BindingRecord[]): DeviceView => ({
    aeTitle: d.aeTitle,
    disabled: d.disabled,
    roles: roleViews(actor, bindings),
    host: d.host,
    port: d.port,
    certificate: d.certFingerprint ? { fingerprint256: d.certFingerprint, serialNumber: d.certSerial, notAfter: d.certNotAfter } : null,
    hasPasscode: d.passcodeHash !== null,
    createdAt: d.createdAt,
  });

  async function department(actor: Principal, name: string): Promise<DepartmentRecord> {
    const d = await repo.findDepartmentByName(normalizeDepartmentName(name));
    if (!d) throw notFound('not-found', 'no such department');
    const s = scope(actor, 'manage');
    if (!s.all && !s.departmentIds.includes(d.id)) throw hidden('no such department');
    return d;
  }

  /** Resolves a requested role binding and checks that the actor may grant it (no escalation). */
  async function grantable(actor: Principal, kind: AccountKind, r: RoleInput): Promise<NewBinding & { departmentName: string }> {
    if (!(ROLES as readonly string[]).includes(r.role)) throw invalid('bad-role', 'role must be reader, writer or admin');
    if (kind === 'device' && !DEVICE_ROLES.includes(r.role)) throw invalid('bad-role', 'a device holds reader or writer roles only');
    const name = normalizeDepartmentName(r.department);
    const d = await repo.findDepartmentByName(name);
    if (!d) {
      // Only a global admin learns that a department does not exist.
      if (canAdministerSystem(actor)) throw invalid('unknown-department', `no department named "${name}"`);
    }
    // The same answer whether or not the department exists (and in the caller's spelling).
    if (!d || !canGrant(actor, r.role, d.id)) throw forbidden('cannot-grant', `you may not grant ${r.role} in "${name}"`);
    return { departmentId: d.id, role: r.role, departmentName: d.name };
  }

  async function grantables(actor: Principal, kind: AccountKind, roles: readonly RoleInput[]): Promise<NewBinding[]> {
    const out = new Map<string, NewBinding>();
    for (const r of roles) {
      const b = await grantable(actor, kind, r);
      out.set(`${b.departmentId}:${b.role}`, { departmentId: b.departmentId, role: b.role });
    }
    return [...out.values()];
  }

  // --- users ---------------------------------------------------------------------------

  async function loadUser(actor: Principal, username: string): Promise<{ user: UserRecord; bindings: BindingRecord[]; account: AccountRoles }> {
    const user = await repo.findUserByName(normalizeUsername(username));
    if (!user) throw notFound('not-found', 'no such user');
    const bindings = await repo.bindingsOf('user', user.id);
    const account = { globalAdmin: user.globalAdmin, roles: rolesOf(bindings) };
    if (!canSeeAccount(actor, account)) throw hidden('no such user');
    return { user, bindings, account };
  }

  async function manageableUser(actor: Principal, username: string) {
    const loaded = await loadUser(actor, username);
    if (!canManageAccount(actor, loaded.account)) throw forbidden('cannot-manage-account', 'this account also works outside your departments or is an administrator');
    return loaded;
  }

  async function assertNotLastGlobalAdmin(user: UserRecord): Promise<void> {
    if (user.globalAdmin && !user.disabled && (await repo.countEnabledGlobalAdmins()) <= 1) {
      throw conflict('last-global-admin', 'the last enabled global administrator cannot be removed');
    }
  }

  // --- devices -------------------------------------------------------------------------

  async function loadDevice(actor: Principal, aeTitle: string): Promise<{ device: DeviceRecord; bindings: BindingRecord[]; account: AccountRoles }> {
    const device = await repo.findDeviceByAeTitle(normalizeAeTitle(aeTitle));
    if (!device) throw notFound('not-found', 'no such device');
    const bindings = await repo.bindingsOf('device', device.id);
    const account = { globalAdmin: false, roles: rolesOf(bindings) };
    if (!canSeeAccount(actor, account)) throw hidden('no such device');
    return { device, bindings, account };
  }

  async function manageableDevice(actor: Principal, aeTitle: string) {
    const loaded = await loadDevice(actor, aeTitle);
    if (!canManageAccount(actor, loaded.account)) throw forbidden('cannot-manage-account', 'this device also works outside your departments');
    return loaded;
  }

  return {
    // --- departments ---
    async listDepartments(actor: Principal): Promise<DepartmentView[]> {
      requireAdministrator(actor);
      return (await repo.listDepartments(visibleFilter(actor))).map(departmentView);
    },

    async getDepartment(actor: Principal, name: string): Promise<DepartmentView> {
      requireAdministrator(actor);
      return departmentView(await department(actor, name));
    },

    createDepartment(actor: Principal, input: { name: string }): Promise<DepartmentView> {
      return audited(actor, 'admin.department.create', { department: String(input.name).slice(0, 64) }, async () => {
        requireSystem(actor);
        return departmentView(await repo.createDepartment(normalizeDepartmentName(input.name)));
      });
    },

    updateDepartment(actor: Principal, name: string, patch: { disabled?: boolean }): Promise<DepartmentView> {
      return audited(actor, 'admin.department.update', { department: name, ...patch }, async () => {
        requireSystem(actor);
        const d = await department(actor, name);
        if (patch.disabled !== undefined) await repo.setDepartmentDisabled(d.id, patch.disabled);
        return departmentView({ ...d, disabled: patch.disabled ?? d.disabled });
      });
    },

    deleteDepartment(actor: Principal, name: string): Promise<void> {
      return audited(actor, 'admin.department.delete', { department: name }, async () => {
        requireSystem(actor);
        await repo.deleteDepartment((await department(actor, name)).id);
      });
    },

    // --- users ---
    async listUsers(actor: Principal): Promise<UserView[]> {
      requireAdministrator(actor);
      const users = await repo.listUsers(visibleFilter(actor));
      const out: UserView[] = [];
      for (const u of users) out.push(userView(actor, u, await repo.bindingsOf('user', u.id)));
      return out;
    },

    async getUser(actor: Principal, username: string): Promise<UserView> {
      requireAdministrator(actor);
      const { user, bindings } = await loadUser(actor, username);
      return userView(actor, user, bindings);
    },

    createUser(actor: Principal, input: { username: string; password: string; roles: readonly RoleInput[]; globalAdmin?: boolean }): Promise<UserView> {
      const details = { username: String(input.username).slice(0, 64), roles: input.roles, globalAdmin: input.globalAdmin === true };
      return audited(actor, 'admin.user.create', details, async () => {
        requireAdministrator(actor);
        if (input.globalAdmin) requireSystem(actor);
        const username = normalizeUsername(input.username);
        const roles = await grantables(actor, 'user', input.roles);
        // A department admin must bind the account to one of its departments, or it could
        // neither see nor manage what it just created.
        if (!canAdministerSystem(actor) && roles.length === 0) throw invalid('roles-required', 'give the user at least one role in your departments');
        checkPasswordRules(input.password, { accountName: username });
        const user = await repo.createUser({
          username,
          passwordHash: await hashPassword(input.password),
          globalAdmin: input.globalAdmin === true,
          mustChangePassword: false,
          roles,
        });
        return userView(actor, user, await repo.bindingsOf('user', user.id));
      });
    },

    updateUser(actor: Principal, username: string, patch: { disabled?: boolean; password?: string; globalAdmin?: boolean }): Promise<UserView> {
      const details = { username, disabled: patch.disabled, globalAdmin: patch.globalAdmin, passwordReset: patch.password !== undefined || undefined };
      return audited(actor, 'admin.user.update', details, async () => {
        requireAdministrator(actor);
        if (patch.globalAdmin !== undefined) requireSystem(actor);
        const { user } = await manageableUser(actor, username);
        if (user.id === actor.id && actor.kind === 'user' && (patch.disabled === true || patch.globalAdmin === false)) {
          throw invalid('cannot-change-self', 'you cannot disable or demote yourself');
        }
        if (patch.disabled === true || patch.globalAdmin === false) await assertNotLastGlobalAdmin(user);
        let passwordHash: string | undefined;
        if (patch.password !== undefined) {
          checkPasswordRules(patch.password, { accountName: user.username });
          passwordHash = await hashPassword(patch.password);
        }
        await repo.updateUser(user.id, {
          disabled: patch.disabled,
          globalAdmin: patch.globalAdmin,
          // An admin-set password is a one-time password: the user must choose a new one.
          ...(passwordHash ? { passwordHash, mustChangePassword: true } : {}),
          // Disabling, demoting or resetting ends every session at once (and re-enabling
          // does not bring old tokens back).
          bumpGeneration: patch.disabled === true || passwordHash !== undefined || patch.globalAdmin === false,
        });
        // A reset is how an admin helps a locked-out user: the one-time password must work now.
        if (passwordHash) await ctx.lockout.unlock(accountKey('user', user.username));
        const fresh = (await repo.findUserById(user.id))!;
        return userView(actor, fresh, await repo.bindingsOf('user', user.id));
      });
    },

    /** Clears the login lock of a user (what a password reset also does). */
    unlockUser(actor: Principal, username: string): Promise<UserView> {
      return audited(actor, 'admin.user.unlock', { username }, async () => {
        requireAdministrator(actor);
        const { user, bindings } = await manageableUser(actor, username);
        await ctx.lockout.unlock(accountKey('user', user.username));
        return userView(actor, user, bindings);
      });
    },

    /**
     * `tresor admin recover`, the emergency path when no admin can log in (offline, run by
     * whoever holds the data directory or DATABASE_URL — the operating system decided that):
     * a new random one-time password for a global admin, its lock cleared, its sessions
     * ended, a change forced at next login. Audited as the system, with the operator's name.
     */
    recoverAdmin(opts: { username?: string; operator?: string }): Promise<{ username: string; password: string }> {
      const principal = { kind: 'system', id: 0, name: 'tresor-cli' } as const;
      const details: Record<string, unknown> = { username: opts.username, operator: opts.operator };
      return auditedRun(
        ctx.audit,
        { action: 'admin.user.recover', principal, details: { via: 'cli' } },
        async (note) => {
          note.details = details;
          let user: UserRecord | null | undefined;
          if (opts.username !== undefined) {
            user = await repo.findUserByName(normalizeUsername(opts.username));
            if (!user || !user.globalAdmin) throw notFound('not-found', `no global administrator named ${opts.username}: run without --user to pick one`);
          } else {
            const admins = (await repo.listUsers({ all: true })).filter((u) => u.globalAdmin).sort((a, b) => Number(a.disabled) - Number(b.disabled) || a.id - b.id);
            user = admins[0];
            if (!user) throw notFound('not-found', 'no global administrator exists: start `tresor serve` on an empty database to create one');
          }
          details.username = user.username;
          const password = generatePassword();
          // Re-enabled too: a disabled last admin is also "no admin can log in".
          await repo.updateUser(user.id, { passwordHash: await hashPassword(password), mustChangePassword: true, disabled: false, bumpGeneration: true });
          await ctx.lockout.unlock(accountKey('user', user.username));
          return { username: user.username, password };
        },
        { strict: true },
      );
    },

    deleteUser(actor: Principal, username: string): Promise<void> {
      return audited(actor, 'admin.user.delete', { username }, async () => {
        requireAdministrator(actor);
        const { user } = await manageableUser(actor, username);
        if (user.id === actor.id && actor.kind === 'user') throw invalid('cannot-change-self', 'you cannot delete yourself');
        await assertNotLastGlobalAdmin(user);
        await repo.deleteUser(user.id);
      });
    },

    grantUserRole(actor: Principal, username: string, role: RoleInput): Promise<UserView> {
      return audited(actor, 'admin.user.role-grant', { username, ...role }, async () => {
        requireAdministrator(actor);
        const { user } = await loadUser(actor, username);
        const b = await grantable(actor, 'user', role);
        await repo.addBinding('user', user.id, b);
        return userView(actor, user, await repo.bindingsOf('user', user.id));
      });
    },

    revokeUserRole(actor: Principal, username: string, role: RoleInput): Promise<void> {
      return audited(actor, 'admin.user.role-revoke', { username, ...role }, async () => {
        requireAdministrator(actor);
        const { user } = await loadUser(actor, username);
        const b = await grantable(actor, 'user', role);
        if (!(await repo.removeBinding('user', user.id, b))) throw notFound('not-found', 'the user does not hold this role');
      });
    },

    // --- devices ---
    async listDevices(actor: Principal): Promise<DeviceView[]> {
      requireAdministrator(actor);
      const out: DeviceView[] = [];
      for (const d of await repo.listDevices(visibleFilter(actor))) out.push(deviceView(actor, d, await repo.bindingsOf('device', d.id)));
      return out;
    },

    async getDevice(actor: Principal, aeTitle: string): Promise<DeviceView> {
      requireAdministrator(actor);
      const { device, bindings } = await loadDevice(actor, aeTitle);
      return deviceView(actor, device, bindings);
    },

    createDevice(actor: Principal, input: { aeTitle: string; roles: readonly RoleInput[]; host?: string | null; port?: number | null }): Promise<DeviceView> {
      const details = { aeTitle: String(input.aeTitle).slice(0, 16), roles: input.roles, host: input.host ?? null, port: input.port ?? null };
      return audited(actor, 'admin.device.create', details, async () => {
        requireAdministrator(actor);
        const aeTitle = normalizeAeTitle(input.aeTitle);
        const roles = await grantables(actor, 'device', input.roles);
        if (!canAdministerSystem(actor) && roles.length === 0) throw invalid('roles-required', 'give the device at least one role in your departments');
        const dest = checkDestination(input.host, input.port);
        const device = await repo.createDevice({ aeTitle, host: dest.host, port: dest.port, roles });
        return deviceView(actor, device, await repo.bindingsOf('device', device.id));
      });
    },

    updateDevice(actor: Principal, aeTitle: string, patch: { disabled?: boolean; host?: string | null; port?: number | null }): Promise<DeviceView> {
      return audited(actor, 'admin.device.update', { aeTitle, ...patch }, async () => {
        requireAdministrator(actor);
        const { device } = await manageableDevice(actor, aeTitle);
        const destChange = patch.host !== undefined || patch.port !== undefined;
        const dest = destChange ? checkDestination(patch.host === undefined ? device.host : patch.host, patch.port === undefined ? device.port : patch.port) : undefined;
        await repo.updateDevice(device.id, { disabled: patch.disabled, ...(dest ?? {}) });
        const fresh = (await repo.findDeviceById(device.id))!;
        return deviceView(actor, fresh, await repo.bindingsOf('device', device.id));
      });
    },

    deleteDevice(actor: Principal, aeTitle: string): Promise<void> {
      return audited(actor, 'admin.device.delete', { aeTitle }, async () => {
        requireAdministrator(actor);
        const { device } = await manageableDevice(actor, aeTitle);
        await repo.deleteDevice(device.id);
      });
    },

    grantDeviceRole(actor: Principal, aeTitle: string, role: RoleInput): Promise<DeviceView> {
      return audited(actor, 'admin.device.role-grant', { aeTitle, ...role }, async () => {
        requireAdministrator(actor);
        const { device } = await loadDevice(actor, aeTitle);
        await repo.addBinding('device', device.id, await grantable(actor, 'device', role));
        return deviceView(actor, device, await repo.bindingsOf('device', device.id));
      });
    },

    revokeDeviceRole(actor: Principal, aeTitle: string, role: RoleInput): Promise<void> {
      return audited(actor, 'admin.device.role-revoke', { aeTitle, ...role }, async () => {
        requireAdministrator(actor);
        const { device } = await loadDevice(actor, aeTitle);
        if (!(await repo.removeBinding('device', device.id, await grantable(actor, 'device', role)))) {
          throw notFound('not-found', 'the device does not hold this role');
        }
      });
    },

    /**
     * Issues the device's one certificate (re-issuing revokes the previous one). Without a
     * CSR Tresor generates the key pair and returns the private key this once; with a CSR
     * the key never leaves the device.
     */
    issueDeviceCertificate(actor: Principal, aeTitle: string, input: { csr?: string; days?: number; keyType?: 'ec' | 'rsa' }): Promise<IssuedCertificateView> {
      const details: Record<string, unknown> = { aeTitle, csr: input.csr !== undefined, days: input.days, ...(input.csr === undefined ? { keyType: input.keyType ?? 'ec' } : {}) };
      return audited(actor, 'admin.device.certificate-issue', details, async () => {
        requireAdministrator(actor);
        if (input.csr !== undefined && input.keyType !== undefined) throw invalid('bad-key-type', 'a key type only applies when Tresor generates the key: with a CSR the device chose its key');
        const { device } = await manageableDevice(actor, aeTitle);
        const issuer = ctx.certificates;
        if (!issuer || !issuer.canIssue) throw unavailable('ca-key-unavailable', 'device certificates cannot be issued: Tresor runs with your own PKI and has no CA key; set TRESOR_TLS_CA_KEY to the private key of your CA (a 0600 file) and restart');
        // A registered C-MOVE destination (host and port) runs a storage SCP Tresor connects to.
        const storageScp = device.host !== null && device.port !== null;
        const issued =
          input.csr !== undefined
            ? await issuer.signCsr({ aeTitle: device.aeTitle, csrPem: input.csr, days: input.days, storageScp })
            : await issuer.issue({ aeTitle: device.aeTitle, days: input.days, storageScp, ...(input.keyType ? { keyType: input.keyType } : {}) });
        const x = new X509Certificate(issued.certificatePem);
        const notAfter = new Date(x.validTo).toISOString();
        const revoked = await repo.replaceDeviceCertificate(device.id, { fingerprint: issued.fingerprint256, serial: x.serialNumber, notAfter });
        // The audit row (written by `audited` on success) names the new and the revoked certificate.
        Object.assign(details, { fingerprint256: issued.fingerprint256, revoked });
        const view: IssuedCertificateView = {
          certificate: issued.certificatePem,
          ca: issuer.caCertPem,
          fingerprint256: issued.fingerprint256,
          serialNumber: x.serialNumber,
          notAfter,
        };
        if (issued.privateKeyPem !== undefined) view.privateKey = issued.privateKeyPem;
        return view;
      });
    },

    revokeDeviceCertificate(actor: Principal, aeTitle: string): Promise<void> {
      return audited(actor, 'admin.device.certificate-revoke', { aeTitle }, async () => {
        requireAdministrator(actor);
        const { device } = await manageableDevice(actor, aeTitle);
        if (!device.certFingerprint) throw notFound('no-certificate', 'the device has no certificate');
        await repo.replaceDeviceCertificate(device.id, null);
      });
    },

    setDevicePasscode(actor: Principal, aeTitle: string, passcode: string): Promise<void> {
      return audited(actor, 'admin.device.passcode-set', { aeTitle }, async () => {
        requireAdministrator(actor);
        const { device } = await manageableDevice(actor, aeTitle);
        checkPasswordRules(passcode, { accountName: device.aeTitle, what: 'passcode' });
        await repo.updateDevice(device.id, { passcodeHash: await hashPassword(passcode) });
      });
    },

    clearDevicePasscode(actor: Principal, aeTitle: string): Promise<void> {
      return audited(actor, 'admin.device.passcode-clear', { aeTitle }, async () => {
        requireAdministrator(actor);
        const { device } = await manageableDevice(actor, aeTitle);
        if (!device.passcodeHash) throw notFound('no-passcode', 'the device has no passcode');
        await repo.updateDevice(device.id, { passcodeHash: null });
      });
    },

    // --- audit trail ---
    /** The audit trail with its chain verification; only a global admin reads it. */
    async readAudit(actor: Principal, filter: AuditFilter, opts: { verify: boolean }): Promise<{ events: AuditRow[]; verification?: VerifyResult }> {
      if (!canAdministerSystem(actor)) {
        await ctx.audit.record({ action: 'admin.audit.read', outcome: 'denied', principal: actorOf(actor), source: actor.source });
        throw forbidden('global-admin-required', 'only a global administrator may read the audit trail');
      }
      const events = await ctx.audit.list(filter);
      const verification = opts.verify ? await ctx.audit.verify() : undefined;
      return verification ? { events, verification } : { events };
    },
  };
}

export type Administration = ReturnType<typeof createAdministration>;

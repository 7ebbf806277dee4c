// The admin API (documented in openapi/openapi.yaml). Thin: each
// route validates its input with a closed JSON schema (additionalProperties: false, so
// unknown fields are refused, not ignored), calls core/identity with the principal, and
// shapes the answer. Who may do what is decided in core (through core/access.ts).

import type { FastifyInstance } from 'fastify';
import type { AuditFilter, AuditOutcome } from '../../core/audit.js';
import { dicomAuditEvent } from '../../core/audit-events.js';
import type { Identity, RoleInput } from '../../core/identity/index.js';
import { AE_TITLE_PATTERN, DEPARTMENT_PATTERN, USERNAME_PATTERN } from '../../core/identity/names.js';
import { PASSWORD_MAX_LENGTH } from '../../core/identity/passwords.js';
import type { Role } from '../../core/principal.js';
import { principalOf } from '../auth.js';

export interface AdminRouteOptions {
  identity: Identity;
}

// --- schemas (mirrored in openapi/openapi.yaml) -------------------------------------------

// The patterns are core's (core/identity/names.ts), so the schema and the core agree.
export const departmentName = { type: 'string', minLength: 1, maxLength: 64, pattern: DEPARTMENT_PATTERN } as const;
export const username = { type: 'string', minLength: 1, maxLength: 64, pattern: USERNAME_PATTERN } as const;
// PS3.5 §6.2 VR AE; surrounding spaces are trimmed by core.
export const aeTitle = { type: 'string', minLength: 1, maxLength: 16, pattern: AE_TITLE_PATTERN } as const;
const role = { type: 'string', enum: ['reader', 'writer', 'admin'] } as const;
const secret = { type: 'string', minLength: 1, maxLength: PASSWORD_MAX_LENGTH } as const;
const host = { type: ['string', 'null'], minLength: 1, maxLength: 253 } as const;
const port = { type: ['integer', 'null'], minimum: 1, maximum: 65535 } as const;
const timestamp = { type: 'string', format: 'date-time' } as const;

const roleBinding = {
  type: 'object',
  additionalProperties: false,
  required: ['department', 'role'],
  properties: { department: departmentName, role },
} as const;

const roleList = { type: 'array', maxItems: 100, items: roleBinding } as const;

const departmentView = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'disabled', 'createdAt'],
  properties: { name: { type: 'string' }, disabled: { type: 'boolean' }, createdAt: timestamp },
} as const;

const userView = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'globalAdmin', 'disabled', 'mustChangePassword', 'roles', 'createdAt'],
  properties: {
    username: { type: 'string' },
    globalAdmin: { type: 'boolean' },
    disabled: { type: 'boolean' },
    mustChangePassword: { type: 'boolean' },
    roles: roleList,
    createdAt: timestamp,
  },
} as const;

const deviceView = {
  type: 'object',
  additionalProperties: false,
  required: ['aeTitle', 'disabled', 'roles', 'host', 'port', 'certificate', 'hasPasscode', 'createdAt'],
  properties: {
    aeTitle: { type: 'string' },
    disabled: { type: 'boolean' },
    roles: roleList,
    host: { type: ['string', 'null'] },
    port: { type: ['integer', 'null'] },
    certificate: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['fingerprint256', 'serialNumber', 'notAfter'],
      properties: {
        fingerprint256: { type: 'string' },
        serialNumber: { type: ['string', 'null'] },
        notAfter: { type: ['string', 'null'] },
      },
    },
    hasPasscode: { type: 'boolean' },
    createdAt: timestamp,
  },
} as const;

const issuedCertificate = {
  type: 'object',
  additionalProperties: false,
  required: ['certificate', 'ca', 'fingerprint256', 'serialNumber', 'notAfter'],
  properties: {
    certificate: { type: 'string' },
    privateKey: { type: 'string' },
    ca: { type: 'string' },
    fingerprint256: { type: 'string' },
    serialNumber: { type: 'string' },
    notAfter: { type: 'string' },
  },
} as const;

const auditEvent = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'at', 'principalKind', 'principalId', 'principalName', 'source', 'action', 'outcome', 'studyUids', 'details', 'prevHash', 'hash'],
  properties: {
    id: { type: 'integer' },
    at: timestamp,
    principalKind: { type: 'string' },
    principalId: { type: ['integer', 'null'] },
    principalName: { type: ['string', 'null'] },
    source: { type: ['string', 'null'] },
    action: { type: 'string' },
    outcome: { type: 'string', enum: ['success', 'failure', 'denied'] },
    studyUids: { type: 'array', items: { type: 'string' } },
    details: { type: 'object', additionalProperties: true },
    prevHash: { type: 'string' },
    hash: { type: 'string' },
    // PS3.15 A.5.3 event of the action (core/audit-events.ts); null where DICOM defines none.
    dicomEvent: { type: ['object', 'null'], additionalProperties: false, required: ['code', 'meaning'], properties: { code: { type: 'string' }, meaning: { type: 'string' } } },
  },
} as const;

const closedObject = (properties: Record<string, unknown>) => ({ type: 'object', additionalProperties: false, properties }) as const;

const verification = {
  type: 'object',
  additionalProperties: false,
  required: ['ok', 'count', 'legacy', 'macChecked', 'checkpoints'],
  properties: {
    ok: { type: 'boolean' },
    count: { type: 'integer' },
    legacy: { type: 'integer' },
    macChecked: { type: 'boolean' },
    checkpoints: { type: 'integer' },
    lastCheckpoint: closedObject({ seq: { type: 'integer' }, count: { type: 'integer' }, at: { type: 'string' } }),
    brokenAt: { type: 'integer' },
    reason: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

const closed = (properties: Record<string, unknown>, required: string[] = []) =>
  ({ type: 'object', additionalProperties: false, required, properties }) as const;

const nameParams = closed({ name: departmentName }, ['name']);
const userParams = closed({ username }, ['username']);
const deviceParams = closed({ aeTitle }, ['aeTitle']);
const userRoleParams = closed({ username, department: departmentName, role }, ['username', 'department', 'role']);
const deviceRoleParams = closed({ aeTitle, department: departmentName, role }, ['aeTitle', 'department', 'role']);

// --- routes ---------------------------------------------------------------------------------

export async function adminRoutes(app: FastifyInstance, opts: AdminRouteOptions): Promise<void> {
  const admin = opts.identity.admin;

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('cache-control', 'no-store');
    return payload;
  });

  // departments
  app.get('/admin/departments', { schema: { response: { 200: closed({ departments: { type: 'array', items: departmentView } }, ['departments']) } } }, async (request) => ({
    departments: await admin.listDepartments(principalOf(request)),
  }));

  app.post<{ Body: { name: string } }>(
    '/admin/departments',
    { schema: { body: closed({ name: departmentName }, ['name']), response: { 201: departmentView } } },
    async (request, reply) => reply.code(201).send(await admin.createDepartment(principalOf(request), request.body)),
  );

  app.get<{ Params: { name: string } }>(
    '/admin/departments/:name',
    { schema: { params: nameParams, response: { 200: departmentView } } },
    async (request) => admin.getDepartment(principalOf(request), request.params.name),
  );

  app.patch<{ Params: { name: string }; Body: { disabled?: boolean } }>(
    '/admin/departments/:name',
    { schema: { params: nameParams, body: { ...closed({ disabled: { type: 'boolean' } }), minProperties: 1 }, response: { 200: departmentView } } },
    async (request) => admin.updateDepartment(principalOf(request), request.params.name, request.body),
  );

  app.delete<{ Params: { name: string } }>('/admin/departments/:name', { schema: { params: nameParams } }, async (request, reply) => {
    await admin.deleteDepartment(principalOf(request), request.params.name);
    return reply.code(204).send();
  });

  // users
  app.get('/admin/users', { schema: { response: { 200: closed({ users: { type: 'array', items: userView } }, ['users']) } } }, async (request) => ({
    users: await admin.listUsers(principalOf(request)),
  }));

  app.post<{ Body: { username: string; password: string; roles: RoleInput[]; globalAdmin?: boolean } }>(
    '/admin/users',
    {
      schema: {
        body: closed({ username, password: secret, roles: roleList, globalAdmin: { type: 'boolean' } }, ['username', 'password', 'roles']),
        response: { 201: userView },
      },
    },
    async (request, reply) => reply.code(201).send(await admin.createUser(principalOf(request), request.body)),
  );

  app.get<{ Params: { username: string } }>(
    '/admin/users/:username',
    { schema: { params: userParams, response: { 200: userView } } },
    async (request) => admin.getUser(principalOf(request), request.params.username),
  );

  app.patch<{ Params: { username: string }; Body: { disabled?: boolean; password?: string; globalAdmin?: boolean } }>(
    '/admin/users/:username',
    {
      schema: {
        params: userParams,
        body: { ...closed({ disabled: { type: 'boolean' }, password: secret, globalAdmin: { type: 'boolean' } }), minProperties: 1 },
        response: { 200: userView },
      },
    },
    async (request) => admin.updateUser(principalOf(request), request.params.username, request.body),
  );

  app.delete<{ Params: { username: string } }>('/admin/users/:username', { schema: { params: userParams } }, async (request, reply) => {
    await admin.deleteUser(principalOf(request), request.params.username);
    return reply.code(204).send();
  });

  app.post<{ Params: { username: string }; Body: RoleInput }>(
    '/admin/users/:username/roles',
    { schema: { params: userParams, body: roleBinding, response: { 200: userView } } },
    async (request) => admin.grantUserRole(principalOf(request), request.params.username, request.body),
  );

  app.post<{ Params: { username: string }; Body: Record<string, never> | undefined }>(
    '/admin/users/:username/unlock',
    {
      // No body is needed; an absent one is validated as {} and anything else is refused.
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
      schema: { params: userParams, body: closed({}), response: { 200: userView } },
    },
    async (request) => admin.unlockUser(principalOf(request), request.params.username),
  );

  app.delete<{ Params: { username: string; department: string; role: Role } }>(
    '/admin/users/:username/roles/:department/:role',
    { schema: { params: userRoleParams } },
    async (request, reply) => {
      const { username: u, department, role: r } = request.params;
      await admin.revokeUserRole(principalOf(request), u, { department, role: r });
      return reply.code(204).send();
    },
  );

  // devices
  app.get('/admin/devices', { schema: { response: { 200: closed({ devices: { type: 'array', items: deviceView } }, ['devices']) } } }, async (request) => ({
    devices: await admin.listDevices(principalOf(request)),
  }));

  app.post<{ Body: { aeTitle: string; roles: RoleInput[]; host?: string | null; port?: number | null } }>(
    '/admin/devices',
    { schema: { body: closed({ aeTitle, roles: roleList, host, port }, ['aeTitle', 'roles']), response: { 201: deviceView } } },
    async (request, reply) => reply.code(201).send(await admin.createDevice(principalOf(request), request.body)),
  );

  app.get<{ Params: { aeTitle: string } }>(
    '/admin/devices/:aeTitle',
    { schema: { params: deviceParams, response: { 200: deviceView } } },
    async (request) => admin.getDevice(principalOf(request), request.params.aeTitle),
  );

  app.patch<{ Params: { aeTitle: string }; Body: { disabled?: boolean; host?: string | null; port?: number | null } }>(
    '/admin/devices/:aeTitle',
    { schema: { params: deviceParams, body: { ...closed({ disabled: { type: 'boolean' }, host, port }), minProperties: 1 }, response: { 200: deviceView } } },
    async (request) => admin.updateDevice(principalOf(request), request.params.aeTitle, request.body),
  );

  app.delete<{ Params: { aeTitle: string } }>('/admin/devices/:aeTitle', { schema: { params: deviceParams } }, async (request, reply) => {
    await admin.deleteDevice(principalOf(request), request.params.aeTitle);
    return reply.code(204).send();
  });

  app.post<{ Params: { aeTitle: string }; Body: RoleInput }>(
    '/admin/devices/:aeTitle/roles',
    { schema: { params: deviceParams, body: roleBinding, response: { 200: deviceView } } },
    async (request) => admin.grantDeviceRole(principalOf(request), request.params.aeTitle, request.body),
  );

  app.delete<{ Params: { aeTitle: string; department: string; role: Role } }>(
    '/admin/devices/:aeTitle/roles/:department/:role',
    { schema: { params: deviceRoleParams } },
    async (request, reply) => {
      const { aeTitle: ae, department, role: r } = request.params;
      await admin.revokeDeviceRole(principalOf(request), ae, { department, role: r });
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { aeTitle: string }; Body: { csr?: string; days?: number; keyType?: 'ec' | 'rsa' } | undefined }>(
    '/admin/devices/:aeTitle/certificate',
    {
      // The body is optional (no CSR: Tresor generates the key); validate an absent one as {}.
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
      schema: {
        params: deviceParams,
        body: closed({ csr: { type: 'string', minLength: 1, maxLength: 16384 }, days: { type: 'integer', minimum: 1, maximum: 3650 }, keyType: { type: 'string', enum: ['ec', 'rsa'] } }),
        response: { 201: issuedCertificate },
      },
    },
    async (request, reply) => reply.code(201).send(await admin.issueDeviceCertificate(principalOf(request), request.params.aeTitle, request.body ?? {})),
  );

  app.delete<{ Params: { aeTitle: string } }>('/admin/devices/:aeTitle/certificate', { schema: { params: deviceParams } }, async (request, reply) => {
    await admin.revokeDeviceCertificate(principalOf(request), request.params.aeTitle);
    return reply.code(204).send();
  });

  app.put<{ Params: { aeTitle: string }; Body: { passcode: string } }>(
    '/admin/devices/:aeTitle/passcode',
    { schema: { params: deviceParams, body: closed({ passcode: secret }, ['passcode']) } },
    async (request, reply) => {
      await admin.setDevicePasscode(principalOf(request), request.params.aeTitle, request.body.passcode);
      return reply.code(204).send();
    },
  );

  app.delete<{ Params: { aeTitle: string } }>('/admin/devices/:aeTitle/passcode', { schema: { params: deviceParams } }, async (request, reply) => {
    await admin.clearDevicePasscode(principalOf(request), request.params.aeTitle);
    return reply.code(204).send();
  });

  // audit trail
  app.get<{
    Querystring: { from?: string; to?: string; principal?: string; study?: string; action?: string; outcome?: AuditOutcome; limit?: string; before?: string; verify?: 'true' | 'false' };
  }>(
    '/admin/audit',
    {
      schema: {
        querystring: closed({
          from: timestamp,
          to: timestamp,
          principal: { type: 'string', minLength: 1, maxLength: 64 },
          study: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9.]+$' },
          action: { type: 'string', minLength: 1, maxLength: 64 },
          outcome: { type: 'string', enum: ['success', 'failure', 'denied'] },
          limit: { type: 'string', pattern: '^(1000|[1-9][0-9]{0,2})$' },
          before: { type: 'string', pattern: '^[1-9][0-9]{0,14}$' },
          verify: { type: 'string', enum: ['true', 'false'] },
        }),
        response: {
          200: closed({ events: { type: 'array', items: auditEvent }, verification }, ['events']),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const filter: AuditFilter = {
        from: q.from,
        to: q.to,
        principal: q.principal,
        studyUid: q.study,
        action: q.action,
        outcome: q.outcome,
        limit: q.limit === undefined ? 100 : Number(q.limit),
        // The repository pages newest first: "afterId" there means ids below this one.
        afterId: q.before === undefined ? undefined : Number(q.before),
      };
      const r = await admin.readAudit(principalOf(request), filter, { verify: q.verify !== 'false' });
      return { ...r, events: r.events.map((e) => ({ ...e, dicomEvent: dicomAuditEvent(e.action) ?? null })) };
    },
  );
}

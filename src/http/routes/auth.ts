// POST /auth/token and POST /auth/password. Rate-limited per address on top of the
// database lockout (which counts per account and per address across processes).

import type { FastifyInstance } from 'fastify';
import type { Identity, IssuedToken } from '../../core/identity/index.js';
import { principalOf } from '../auth.js';

export interface AuthRouteOptions {
  identity: Identity;
  rateLimit: { max: number; timeWindowMs: number };
}

const tokenResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['access_token', 'token_type', 'expires_in', 'password_change_required'],
  properties: {
    access_token: { type: 'string' },
    token_type: { type: 'string', enum: ['Bearer'] },
    expires_in: { type: 'integer' },
    password_change_required: { type: 'boolean' },
  },
} as const;

// Lengths only: the rules for a good password are checked in core with a clear message,
// and a login with any junk simply fails like a wrong password.
const secret = { type: 'string', minLength: 1, maxLength: 256 } as const;

const toBody = (t: IssuedToken) => ({
  access_token: t.accessToken,
  token_type: t.tokenType,
  expires_in: t.expiresIn,
  password_change_required: t.mustChangePassword,
});

export async function authRoutes(app: FastifyInstance, opts: AuthRouteOptions): Promise<void> {
  const { identity } = opts;
  // One counter per address for all of /auth/* (a per-route limit would double the budget).
  // It runs first: /auth/password is marked public so that the limit applies before the
  // token is checked, and authenticates right after the limiter.
  const limit = app.rateLimit({ max: opts.rateLimit.max, timeWindow: opts.rateLimit.timeWindowMs });

  // Tokens must not be stored by browsers or proxies (RFC 6749 §5.1).
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('cache-control', 'no-store');
    return payload;
  });

  app.post<{ Body: { username: string; password: string } }>(
    '/auth/token',
    {
      config: { public: true },
      onRequest: limit,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'password'],
          properties: { username: { type: 'string', minLength: 1, maxLength: 128 }, password: secret },
        },
        response: { 200: tokenResponse },
      },
    },
    async (request) => toBody(await identity.login({ username: request.body.username, password: request.body.password, source: request.ip })),
  );

  app.post<{ Body: { currentPassword: string; newPassword: string } }>(
    '/auth/password',
    {
      config: { public: true, allowPasswordChange: true },
      onRequest: [limit, app.authenticate],
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['currentPassword', 'newPassword'],
          properties: { currentPassword: secret, newPassword: secret },
        },
        response: { 200: tokenResponse },
      },
    },
    async (request) => toBody(await identity.changePassword(principalOf(request), request.body)),
  );
}

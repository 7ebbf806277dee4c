// POST /auth/token, POST /auth/password and the console's session (POST, GET, DELETE
// /auth/session). Rate-limited per address on top of the database lockout (which counts
// per account and per address across processes).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { forbidden, unauthenticated } from '../../core/errors.js';
import type { BrowserSessions, Identity, IssuedToken, ResolvedBrowserSession } from '../../core/identity/index.js';
import { isOwnOriginOf, principalOf, SESSION_COOKIE, SESSION_COOKIE_OPTIONS } from '../auth.js';

export interface AuthRouteOptions {
  identity: Identity;
  /** TRESOR_PUBLIC_URL (its origin may log in from a browser). */
  publicUrl?: string;
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

const sessionResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['user', 'csrfToken', 'idleTimeoutSeconds', 'expiresAt'],
  properties: {
    user: {
      type: 'object',
      additionalProperties: false,
      required: ['username', 'globalAdmin', 'mustChangePassword', 'roles'],
      properties: {
        username: { type: 'string' },
        globalAdmin: { type: 'boolean' },
        mustChangePassword: { type: 'boolean' },
        roles: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['department', 'role'],
            properties: { department: { type: 'string' }, role: { type: 'string' } },
          },
        },
      },
    },
    csrfToken: { type: 'string' },
    idleTimeoutSeconds: { type: 'integer' },
    expiresAt: { type: 'string', format: 'date-time' },
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

function sessionsOf(identity: Identity): BrowserSessions {
  if (!identity.sessions) throw unauthenticated('session-expired', 'browser sessions are not enabled on this server: use a bearer token');
  return identity.sessions;
}

function cookieSessionOf(request: FastifyRequest): ResolvedBrowserSession {
  if (!request.browserSession) throw unauthenticated('session-expired', 'no console session: log in with POST /auth/session');
  return request.browserSession;
}

const setSessionCookie = (reply: FastifyReply, value: string) => void reply.setCookie(SESSION_COOKIE, value, SESSION_COOKIE_OPTIONS);

const credentials = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'password'],
  properties: { username: { type: 'string', minLength: 1, maxLength: 128 }, password: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;

export async function authRoutes(app: FastifyInstance, opts: AuthRouteOptions): Promise<void> {
  const { identity } = opts;
  const publicOrigin = opts.publicUrl ? new URL(opts.publicUrl).origin : undefined;
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
      schema: { body: credentials, response: { 200: tokenResponse } },
    },
    async (request) => toBody(await identity.login({ username: request.body.username, password: request.body.password, source: request.ip })),
  );

  // The console's login: the same password check, lockout and audit as /auth/token, then
  // a server-side session behind an HttpOnly cookie (core/identity/browser-sessions.ts).
  app.post<{ Body: { username: string; password: string } }>(
    '/auth/session',
    {
      config: { public: true },
      onRequest: limit,
      schema: { body: credentials, response: { 200: sessionResponse } },
    },
    async (request, reply) => {
      // Login CSRF: another site must not log the browser into an account of its choosing.
      const origin = request.headers.origin;
      if (origin !== undefined && !isOwnOriginOf(request, origin, publicOrigin)) {
        throw forbidden('csrf', 'log in from the Tresor console itself (the request came from another site)');
      }
      const sessions = sessionsOf(identity);
      const { userId } = await identity.loginForSession({ username: request.body.username, password: request.body.password, source: request.ip });
      const started = await sessions.start(userId, request.ip, 'password');
      setSessionCookie(reply, started.cookieValue);
      return started.view;
    },
  );

  // Page reload: who am I, and the CSRF token again (it lives only in the page's memory).
  app.get('/auth/session', { config: { allowPasswordChange: true }, schema: { response: { 200: sessionResponse } } }, async (request) =>
    cookieSessionOf(request).view(),
  );

  // Logout: the row goes, so the old cookie gets 401 everywhere from now on.
  app.delete('/auth/session', { config: { allowPasswordChange: true } }, async (request, reply) => {
    await sessionsOf(identity).end(cookieSessionOf(request));
    void reply.clearCookie(SESSION_COOKIE, SESSION_COOKIE_OPTIONS);
    return reply.code(204).send();
  });

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
        response: { 200: { anyOf: [tokenResponse, sessionResponse] } },
      },
    },
    async (request, reply) => {
      const issued = await identity.changePassword(principalOf(request), request.body);
      const old = request.browserSession;
      if (!old) return toBody(issued);
      // A cookie session: the password change ended it (the token generation moved), so a
      // new one replaces it (a fresh id after a privilege change, OWASP session management),
      // and no bearer token is handed to the page.
      const sessions = sessionsOf(identity);
      await sessions.end(old, 'password-change');
      const started = await sessions.start(old.principal.id, request.ip, 'password-change');
      setSessionCookie(reply, started.cookieValue);
      return started.view;
    },
  );
}

// JWT → Principal for the HTTP door (ARCHITECTURE.md rule 1: it authenticates, the core
// authorizes). Deny by default: every route requires a valid bearer token unless its
// config says `public: true`, so a route added later (DICOMweb, …) cannot be left open by
// forgetting a hook. @fastify/jwt verifies the signature and claims with the options of
// core/identity/tokens.ts (one algorithm, issuer, audience, type, our keys by kid only);
// the account is then re-read on every request, so disable and role changes act at once.
//
// The console and the viewer authenticate with a session cookie instead
// (core/identity/browser-sessions.ts), accepted on every route that takes a token and
// resolving to the same Principal. A cookie is sent by the browser on its own, so every
// state-changing request it authenticates must also carry the session's CSRF token in
// X-CSRF-Token (OWASP "synchronizer token") and, when the browser names one, come from
// our own Origin (RFC 6454 §7; Fetch sends it on every non-GET request). SameSite=Strict
// is a second wall, not the only one. Bearer requests are not ambient and unaffected.

import fastifyCookie from '@fastify/cookie';
import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { forbidden, unauthenticated } from '../core/errors.js';
import type { Identity, ResolvedBrowserSession, Session } from '../core/identity/index.js';
import { csrfTokenMatches } from '../core/identity/browser-sessions.js';
import { isAccessClaims } from '../core/identity/tokens.js';
import type { Principal } from '../core/principal.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler for plugins that want to be explicit; the global hook already ran it. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
  interface FastifyRequest {
    /** Set by authentication; null on public routes. */
    principal: Principal | null;
    session: Session | null;
    /** Set when the request was authenticated by the session cookie (not by a bearer token). */
    browserSession: ResolvedBrowserSession | null;
  }
  interface FastifyContextConfig {
    /** No authentication (POST /auth/token, GET /healthz). */
    public?: boolean;
    /** Reachable with a token whose password must be changed first (POST /auth/password). */
    allowPasswordChange?: boolean;
  }
}

/** The authenticated principal of a request; throws when there is none. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw unauthenticated('missing-token', 'a bearer token is required');
  return request.principal;
}

const BEARER_RE = /^Bearer [A-Za-z0-9_.-]{1,8192}$/;

/**
 * The console's session cookie. The __Host- prefix makes the browser refuse it unless it
 * is Secure, has Path=/ and no Domain (RFC 6265bis §4.1.3.2): no sibling host can set or
 * shadow it.
 */
export const SESSION_COOKIE = '__Host-tresor_session';
export const CSRF_HEADER = 'x-csrf-token';
export const SESSION_COOKIE_OPTIONS = Object.freeze({ httpOnly: true, secure: true, sameSite: 'strict', path: '/' } as const);

/** Methods that must not change state (RFC 9110 §9.2.1): no CSRF token needed. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The origins a browser may call us from: the one it addressed over HTTPS, and the public URL's. */
export function isOwnOriginOf(request: FastifyRequest, origin: string, publicOrigin: string | undefined): boolean {
  if (origin === publicOrigin) return true;
  return origin === `https://${request.host}` && request.protocol === 'https';
}

export interface AuthOptions {
  /** TRESOR_PUBLIC_URL: its origin is ours too (behind a port mapping or a name). */
  publicUrl?: string;
  /** A GET for a path no route has that the console serves (its client-side routes): no authentication. */
  isPagePath?: (url: string) => boolean;
}

export async function registerAuth(app: FastifyInstance, identity: Identity, opts: AuthOptions = {}): Promise<void> {
  const tokens = identity.tokens;
  const publicOrigin = opts.publicUrl ? new URL(opts.publicUrl).origin : undefined;
  // Parses Cookie on onRequest, before the authentication hook below (hooks run in order).
  await app.register(fastifyCookie);
  await app.register(fastifyJwt, {
    // Verify-only: tokens are signed in core (identity.login). The key comes from our own
    // ring by `kid`; header fields that name a key (jku, x5u, jwk, x5c) are never read.
    secret: {
      public: async (_request: FastifyRequest, decoded: unknown) => {
        const header = (decoded as { header?: { kid?: unknown } }).header;
        const key = await tokens.keyFor(header?.kid);
        if (!key) throw unauthenticated('invalid-token', 'unknown key id');
        return key;
      },
    },
    decode: { complete: true },
    verify: { ...tokens.verifierOptions(), maxAge: tokens.maxAgeSeconds },
  });

  app.decorateRequest('principal', null);
  app.decorateRequest('session', null);
  app.decorateRequest('browserSession', null);

  const isOwnOrigin = (request: FastifyRequest, origin: string) => isOwnOriginOf(request, origin, publicOrigin);

  async function refuseCsrf(request: FastifyRequest, why: string): Promise<never> {
    await identity.recordTokenRefusal(`csrf-${why}`, request.ip);
    throw forbidden('csrf', 'the request lacks the console session\'s X-CSRF-Token or comes from another site: reload the console and try again');
  }

  async function authenticateCookie(request: FastifyRequest, value: string): Promise<void> {
    const sessions = identity.sessions;
    const s = sessions ? await sessions.resolve(value, request.ip) : null;
    if (!s) throw unauthenticated('session-expired', 'the console session has ended or expired: log in again');
    if (!SAFE_METHODS.has(request.method)) {
      const origin = request.headers.origin;
      if (origin !== undefined && !isOwnOrigin(request, origin)) await refuseCsrf(request, 'origin');
      const token = request.headers[CSRF_HEADER];
      if (!csrfTokenMatches(s.csrfToken, typeof token === 'string' ? token : undefined)) await refuseCsrf(request, 'token');
    }
    request.browserSession = s;
    request.session = s;
    request.principal = s.principal;
  }

  async function authenticate(request: FastifyRequest): Promise<void> {
    if (request.principal) return;
    const header = request.headers.authorization;
    if (header === undefined) {
      const cookie = request.cookies[SESSION_COOKIE];
      if (cookie !== undefined) return authenticateCookie(request, cookie);
      throw unauthenticated('missing-token', 'a bearer token is required');
    }
    if (!BEARER_RE.test(header)) {
      await identity.recordTokenRefusal('malformed-authorization', request.ip);
      throw unauthenticated('invalid-token', 'invalid access token');
    }
    let payload: unknown;
    try {
      payload = await request.jwtVerify();
    } catch (e) {
      const expired = (e as { code?: string }).code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED';
      await identity.recordTokenRefusal(expired ? 'token-expired' : 'invalid-token', request.ip);
      throw expired ? unauthenticated('token-expired', 'the access token has expired') : unauthenticated('invalid-token', 'invalid access token');
    }
    if (!isAccessClaims(payload)) {
      await identity.recordTokenRefusal('invalid-claims', request.ip);
      throw unauthenticated('invalid-token', 'invalid access token');
    }
    const session = await identity.sessionForClaims(payload, request.ip);
    if (!session) {
      await identity.recordTokenRefusal('account-unusable', request.ip);
      throw unauthenticated('account-unusable', 'the account is disabled, gone, or its password changed');
    }
    request.session = session;
    request.principal = session.principal;
  }

  app.decorate('authenticate', async (request: FastifyRequest) => {
    await authenticate(request);
    enforcePasswordChange(request);
  });

  function enforcePasswordChange(request: FastifyRequest): void {
    if (request.session?.mustChangePassword && !request.routeOptions.config?.allowPasswordChange) {
      throw forbidden('password-change-required', 'change the initial password first (POST /auth/password)');
    }
  }

  // onRequest: before the body is read, so nobody unauthenticated makes us parse anything.
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (config?.public) return;
    // No route matched (the 404 handler): the console's page fallback needs no login.
    if (request.routeOptions.url === undefined && (request.method === 'GET' || request.method === 'HEAD') && opts.isPagePath?.(request.url)) return;
    // CORS preflight (answered by @fastify/cors) carries no credentials by design.
    if (request.method === 'OPTIONS' && request.routeOptions.url === '*') return;
    await authenticate(request);
    enforcePasswordChange(request);
  });
}

// JWT → Principal for the HTTP door (ARCHITECTURE.md rule 1: it authenticates, the core
// authorizes). Deny by default: every route requires a valid bearer token unless its
// config says `public: true`, so a route added later (DICOMweb, …) cannot be left open by
// forgetting a hook. @fastify/jwt verifies the signature and claims with the options of
// core/identity/tokens.ts (one algorithm, issuer, audience, type, our keys by kid only);
// the account is then re-read on every request, so disable and role changes act at once.

import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { forbidden, unauthenticated } from '../core/errors.js';
import type { Identity, Session } from '../core/identity/index.js';
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

export async function registerAuth(app: FastifyInstance, identity: Identity): Promise<void> {
  const tokens = identity.tokens;
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

  async function authenticate(request: FastifyRequest): Promise<void> {
    if (request.principal) return;
    const header = request.headers.authorization;
    if (header === undefined) {
      // Audited rate-limited like a bad token (issue 14 "Also"): a scanner leaves a trace.
      await identity.recordTokenRefusal('missing-token', request.ip);
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
    // CORS preflight (answered by @fastify/cors) carries no credentials by design.
    if (request.method === 'OPTIONS' && request.routeOptions.url === '*') return;
    await authenticate(request);
    enforcePasswordChange(request);
  });
}

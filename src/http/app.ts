// The HTTPS front door: buildApp(deps) wires hardening (helmet headers, body limit,
// closed JSON schemas, rate limit on /auth/*), the one error body, authentication
// (http/auth.ts, deny by default) and the routes: /auth, /admin, /healthz,
// DICOMweb under /dicomweb and the viewer under /viewer/, all from the one Deps (deps.ts). main.ts listens; tests
// build the same app from their own createDeps and listen on port 0.

import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { Http2SecureServer, ServerHttp2Session } from 'node:http2';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Deps } from '../deps.js';
import { registerAuth } from './auth.js';
import { dicomwebRoutes } from './dicomweb/routes.js';
import { installErrorHandlers } from './errors.js';
import { adminRoutes } from './routes/admin.js';
import { backupRoutes } from './routes/backup.js';
import { authRoutes } from './routes/auth.js';
import { studyZipRoutes } from './routes/study-zip.js';
import { consoleOverviewRoutes } from './routes/console-overview.js';
import { deviceBundleRoutes } from './routes/device-bundle.js';
import { consoleStaticRoutes, defaultWebRoot, isConsolePath, sendConsolePage } from './routes/console-static.js';
import { healthRoutes } from './routes/health.js';
import { observeHttp } from './observe.js';
import { acceptEmptyJsonOnDelete } from './json-body.js';
import type { HttpsOptions } from './tls.js';
import { viewerRoutes } from './viewer/routes.js';

/** The part of Deps the HTTP front door uses. */
export type AppDeps = Pick<
  Deps,
  'config' | 'logger' | 'db' | 'identity' | 'audit' | 'ingest' | 'query' | 'retrieve' | 'deletion' | 'pixels' | 'departmentByName' | 'tuning' | 'blobs' | 'overview' | 'backup'
> &
  Partial<Pick<Deps, 'metrics' | 'refuse' | 'countUnauthenticated'>>;

export interface BuildAppOptions {
  /** TLS options from http/tls.ts httpsOptions(pki); null serves plain HTTP (app.inject tests only). */
  https: HttpsOptions | null;
  /** Requests per address to /auth/* per window (default 30 per minute). */
  authRateLimit?: { max: number; timeWindowMs: number };
  /** Largest JSON body (default 1 MiB): the admin API needs a few KiB at most. */
  bodyLimit?: number;
  /** The built console (index.html, assets/); default dist/web beside the code. */
  webRoot?: string;
  /** Told about every route as it is registered (the OpenAPI completeness test, diagnostics). */
  onRoute?: (route: { method: string; url: string }) => void;
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** The node:http server fields that also govern HTTP/1.1 connections of an HTTP/2 server with allowHTTP1. */
type Http1Timeouts = { headersTimeout: number; requestTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number };

/**
 * Fastify sets requestTimeout and keepAliveTimeout only on an HTTP/1 server, and
 * http2.createSecureServer ignores node:http's creation options. With allowHTTP1 Node
 * handles HTTP/1.1 connections with node:http's own connection code, which reads these
 * fields from the server, and starts its timeout checks on 'listening' with
 * connectionsCheckingInterval: so they are set here, before listen (slowloris: headers
 * within headersTimeout, a whole request within requestTimeout). HTTP/2 streams get the
 * session idle timeout (http2SessionTimeout), STOW-RS its own idle timer, and Node's
 * HTTP/2 flood protections (rapid reset, CONTINUATION) stay on.
 */
/**
 * On close, HTTP/2 sessions get GOAWAY (their open streams finish, no new ones start)
 * and idle HTTP/1.1 keep-alive sockets are closed, as Fastify does for an HTTP/1 server;
 * on Node 20 an HTTP/2 server would otherwise wait for every idle browser session to time out.
 */
function closeGracefullyOnShutdown(app: FastifyInstance): void {
  const server = app.server as unknown as Http2SecureServer;
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  app.addHook('preClose', async () => {
    for (const session of sessions) if (!session.closed && !session.destroyed) session.close();
    (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  });
}

function applyHttp1Timeouts(server: Http1Timeouts, https: HttpsOptions): void {
  server.headersTimeout = https.headersTimeout ?? 10_000;
  server.requestTimeout = 600_000;
  server.keepAliveTimeout = 10_000;
  server.connectionsCheckingInterval = https.connectionsCheckingInterval ?? 1_000;
}

export async function buildApp(deps: AppDeps, opts: BuildAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    // HTTP/2 with HTTP/1.1 kept, by ALPN (http/tls.ts). request.raw and reply.raw are then
    // Node's HTTP/2 compatibility objects (streams like IncomingMessage/ServerResponse)
    // for h2 requests, and the usual ones for HTTP/1.1.
    // An HTTP/2 connection with no frame either way for 72 s is closed (Fastify's
    // session.setTimeout), like an idle HTTP/1.1 keep-alive socket below.
    // (Fastify's option types are per server kind; the instance is typed as one below.)
    ...((opts.https ? { http2: true, https: { ...opts.https, allowHTTP1: true }, http2SessionTimeout: 72_000 } : {}) as object),
    loggerInstance: deps.logger,
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Request bodies with __proto__ or constructor.prototype are refused, not cleaned.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // A client-chosen request id would let callers forge log correlation.
    requestIdHeader: false,
    trustProxy: false,
    return503OnClosing: true,
    // Slow clients (slowloris) are cut off: headers must arrive within headersTimeout
    // (set in http/tls.ts with the server options Node only reads at creation), a
    // whole request within requestTimeout (STOW-RS also has its own idle timer), an
    // idle socket after connectionTimeout/keepAliveTimeout.
    connectionTimeout: 60_000,
    keepAliveTimeout: 10_000,
    requestTimeout: 600_000,
    // A WADO-RS frame list of a few hundred frames must fit in one path parameter.
    routerOptions: { maxParamLength: 2048 },
    ajv: {
      customOptions: {
        // additionalProperties: false must refuse unknown fields; Fastify's default removes them.
        removeAdditional: false,
        useDefaults: true,
        // No type coercion: {"name": 42} is refused, not turned into "42". Query strings and
        // path parameters are therefore declared as strings (with patterns) and converted
        // by the route.
        coerceTypes: false,
        allErrors: false,
      },
    },
  }) as unknown as FastifyInstance;
  if (opts.https) {
    applyHttp1Timeouts(app.server as unknown as Http1Timeouts, opts.https);
    closeGracefullyOnShutdown(app);
  }

  if (opts.onRoute) {
    const listener = opts.onRoute;
    app.addHook('onRoute', (r) => {
      for (const method of [r.method].flat()) listener({ method: String(method), url: r.url });
    });
  }
  const webRoot = opts.webRoot ?? defaultWebRoot();
  installErrorHandlers(app, { pageFallback: (request, reply) => (isConsolePath(request.url) ? sendConsolePage(webRoot, reply) : null) });
  acceptEmptyJsonOnDelete(app);
  // Connections, anonymous refusals and abandoned STOWs → metrics and the refusal log (http/observe.ts).
  observeHttp(
    app,
    {
      connections: (d) => deps.metrics?.httpConnections.inc(d),
      unauthenticated: (door, reason) => deps.countUnauthenticated?.(door, reason),
      refuse: (r) => deps.refuse?.(r),
    },
    opts.https !== null,
  );

  await app.register(helmet, {
    // An API: nothing here is ever a page, a frame or a script.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] },
    },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
    referrerPolicy: { policy: 'no-referrer' },
    frameguard: { action: 'deny' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
  });
  if (deps.config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: [...deps.config.corsOrigins],
      credentials: false,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type', 'Accept', 'If-None-Match'],
      // QIDO-RS truncation (Warning) and metadata caching (ETag) must reach a browser viewer.
      exposedHeaders: ['Warning', 'ETag', 'Content-Location'],
      maxAge: 600,
    });
  }
  await app.register(rateLimit, { global: false });

  await registerAuth(app, deps.identity, { publicUrl: deps.config.publicUrl, isPagePath: isConsolePath });

  // GET /readyz asks the database and the blob store; GET /healthz asks nothing (liveness).
  const database = async () => void (await deps.db.raw('select 1'));
  await app.register(healthRoutes, { ready: { database, 'blob-store': () => deps.blobs.ping() } });
  await app.register(authRoutes, { identity: deps.identity, publicUrl: deps.config.publicUrl, rateLimit: opts.authRateLimit ?? { max: 30, timeWindowMs: 60_000 } });
  await app.register(adminRoutes, { identity: deps.identity });
  await app.register(studyZipRoutes, { retrieve: deps.retrieve });
  await app.register(consoleOverviewRoutes, { overview: deps.overview });
  await app.register(deviceBundleRoutes, {
    identity: deps.identity,
    dimse: { port: deps.config.dimsePort, aeTitle: deps.config.aeTitle },
    publicUrl: deps.config.publicUrl,
  });
  await app.register(consoleStaticRoutes, { webRoot });
  await app.register(backupRoutes, { backup: deps.backup });
  // Every DICOMweb route is authenticated by the global hook (registerAuth): no
  // `authenticate` here. STOW-RS sets its own bodyLimit or parses the raw stream.
  await app.register(
    async (scope) =>
      dicomwebRoutes(scope, {
        ingest: deps.ingest,
        query: deps.query,
        retrieve: deps.retrieve,
        deletion: deps.deletion,
        pixels: deps.pixels,
        config: { publicUrl: deps.config.publicUrl, limits: deps.config.limits },
        departmentByName: deps.departmentByName,
        stowIdleTimeoutMs: deps.tuning.stowIdleTimeoutMs,
      }),
    { prefix: '/dicomweb' },
  );
  // The built-in viewer (OHIF) at /viewer/, reading this origin's /dicomweb (http/viewer/).
  await app.register(viewerRoutes, { dir: deps.config.viewerDir, dicomweb: '/dicomweb' });

  return app;
}

// The only reader of process.env (ARCHITECTURE.md rule 5). One schema for the
// environment and for `tresor serve` flags; parsed and validated once at start,
// with one clear message per bad value; the result is frozen and passed down.

import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AE_TITLE_RE, BOOTSTRAP_USERNAME } from './core/identity/names.js';
import { checkPasswordRules } from './core/identity/passwords.js';

export interface S3Config {
  endPoint: string;
  port?: number;
  useSSL: boolean;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
  /** Objects up to this size go up in one PUT (see storage/s3-store.ts). */
  partSize: number;
  /** Idle timeout of every S3 request in ms (S3_TIMEOUT_MS; default 30 s, see storage/s3-store.ts). */
  timeoutMs?: number;
  /** S3_ALLOW_PLAINTEXT: plain HTTP to a non-loopback endpoint was explicitly allowed. */
  allowPlaintext?: boolean;
}

export interface Config {
  dataDir: string;
  host: string;
  dimsePort: number;
  httpPort: number;
  aeTitle: string;
  databaseUrl?: string;
  s3?: S3Config;
  /** Your own PKI; `caKey` (TRESOR_TLS_CA_KEY) lets Tresor issue device certificates from your CA. */
  tls: { cert?: string; key?: string; ca?: string; caKey?: string };
  /** Extra names (DNS or IP) in the generated server certificate, e.g. the LAN name clients use. */
  tlsHostnames: readonly string[];
  /** Initial admin password chosen by the operator (never logged). */
  adminPassword?: string;
  /** Public base URL for links in responses (BulkDataURI, Location); never taken from Host. */
  publicUrl?: string;
  corsOrigins: readonly string[];
  /** The built-in viewer's files (OHIF's prebuilt dist/, fetched by scripts/fetch-viewer.mjs). */
  viewerDir: string;
  logLevel: string;
  limits: {
    /** Largest single DICOM object accepted (bytes). */
    maxObjectBytes: number;
    /** Largest STOW-RS request (bytes). */
    maxRequestBytes: number;
    /** Most parts in one STOW-RS request. */
    maxParts: number;
    /** Most concurrent DIMSE associations in total, and per remote address. */
    maxAssociations: number;
    maxAssociationsPerAddress: number;
    /** Largest PDU we accept (PS3.8 §9.3.1 max length negotiation). */
    maxPduBytes: number;
  };
  /** DIMSE: require both a client certificate and user identity. */
  dimseRequireBoth: boolean;
  /** Access-token lifetime in seconds. */
  tokenTtlSeconds: number;
  /** Browser sessions (console, viewer): idle timeout and absolute lifetime. */
  session: { idleMinutes: number; maxHours: number };
  /** Prometheus listener (src/metrics/); undefined port = off. */
  metrics?: { port: number; host: string; tokenFile?: string };
  /** How long start-up keeps retrying the database and the blob store, in seconds. */
  startupWaitSeconds: number;
  /**
   * TRESOR_MASTER_KEY_FILE: ≥ 32 random bytes (`tresor keygen`). When set, the CA, the
   * server certificate and the token keys live in the database, sealed under it, and the
   * audit key derives from it: what several nodes on one database share (issue 11).
   */
  masterKeyFile?: string;
  audit: {
    /** A signed checkpoint after this many rows written by this node… */
    checkpointEveryRows: number;
    /** …and at least this often (minutes) while rows are written; also at shutdown. */
    checkpointEveryMinutes: number;
  };
  /**
   * Decoding stored pixel data (transcoding, rendering) in child processes
   * (core/dicom/pixels/pixel-codec.ts, issue 14 item 1).
   */
  decode: {
    /** Child processes decoding at once. */
    workers: number;
    /** Longest one decoding job may run (and wait for a child). */
    timeoutMs: number;
    /** Most decoded pixel bytes one job may produce (the header's promise is checked against it first). */
    maxOutputBytes: number;
  };
}

/** Names of every setting: environment variable ↔ `tresor serve` flag. */
export const SETTINGS = {
  dataDir: { env: 'TRESOR_DATA_DIR', flag: 'data-dir' },
  host: { env: 'TRESOR_HOST', flag: 'host' },
  dimsePort: { env: 'TRESOR_DIMSE_PORT', flag: 'dimse-port' },
  httpPort: { env: 'TRESOR_HTTP_PORT', flag: 'http-port' },
  aeTitle: { env: 'TRESOR_AE_TITLE', flag: 'ae-title' },
  databaseUrl: { env: 'DATABASE_URL', flag: 'database-url' },
  s3Endpoint: { env: 'S3_ENDPOINT', flag: 's3-endpoint' },
  s3Port: { env: 'S3_PORT', flag: 's3-port' },
  s3UseSsl: { env: 'S3_USE_SSL', flag: 's3-use-ssl' },
  s3AccessKey: { env: 'S3_ACCESS_KEY', flag: 's3-access-key' },
  s3SecretKey: { env: 'S3_SECRET_KEY', flag: 's3-secret-key' },
  s3Bucket: { env: 'S3_BUCKET', flag: 's3-bucket' },
  s3Region: { env: 'S3_REGION', flag: 's3-region' },
  s3PartSize: { env: 'S3_PART_SIZE', flag: 's3-part-size' },
  s3TimeoutMs: { env: 'S3_TIMEOUT_MS', flag: 's3-timeout-ms' },
  s3AllowPlaintext: { env: 'S3_ALLOW_PLAINTEXT', flag: 's3-allow-plaintext' },
  tlsCert: { env: 'TRESOR_TLS_CERT', flag: 'tls-cert' },
  tlsKey: { env: 'TRESOR_TLS_KEY', flag: 'tls-key' },
  tlsCa: { env: 'TRESOR_TLS_CA', flag: 'tls-ca' },
  tlsCaKey: { env: 'TRESOR_TLS_CA_KEY', flag: 'tls-ca-key' },
  tlsHostnames: { env: 'TRESOR_TLS_HOSTNAMES', flag: 'tls-hostnames' },
  adminPassword: { env: 'TRESOR_ADMIN_PASSWORD', flag: 'admin-password' },
  publicUrl: { env: 'TRESOR_PUBLIC_URL', flag: 'public-url' },
  corsOrigins: { env: 'TRESOR_CORS_ORIGINS', flag: 'cors-origins' },
  viewerDir: { env: 'TRESOR_VIEWER_DIR', flag: 'viewer-dir' },
  logLevel: { env: 'TRESOR_LOG_LEVEL', flag: 'log-level' },
  maxObjectBytes: { env: 'TRESOR_MAX_OBJECT_BYTES', flag: 'max-object-bytes' },
  maxRequestBytes: { env: 'TRESOR_MAX_REQUEST_BYTES', flag: 'max-request-bytes' },
  maxParts: { env: 'TRESOR_MAX_PARTS', flag: 'max-parts' },
  maxAssociations: { env: 'TRESOR_MAX_ASSOCIATIONS', flag: 'max-associations' },
  maxAssociationsPerAddress: { env: 'TRESOR_MAX_ASSOCIATIONS_PER_ADDRESS', flag: 'max-associations-per-address' },
  maxPduBytes: { env: 'TRESOR_MAX_PDU_BYTES', flag: 'max-pdu-bytes' },
  dimseRequireBoth: { env: 'TRESOR_DIMSE_REQUIRE_BOTH', flag: 'dimse-require-both' },
  tokenTtlSeconds: { env: 'TRESOR_TOKEN_TTL_SECONDS', flag: 'token-ttl-seconds' },
  sessionIdleMinutes: { env: 'TRESOR_SESSION_IDLE_MINUTES', flag: 'session-idle-minutes' },
  sessionMaxHours: { env: 'TRESOR_SESSION_MAX_HOURS', flag: 'session-max-hours' },
  metricsPort: { env: 'TRESOR_METRICS_PORT', flag: 'metrics-port' },
  metricsHost: { env: 'TRESOR_METRICS_HOST', flag: 'metrics-host' },
  metricsTokenFile: { env: 'TRESOR_METRICS_TOKEN_FILE', flag: 'metrics-token-file' },
  startupWaitSeconds: { env: 'TRESOR_STARTUP_WAIT_SECONDS', flag: 'startup-wait-seconds' },
  masterKeyFile: { env: 'TRESOR_MASTER_KEY_FILE', flag: 'master-key-file' },
  auditCheckpointRows: { env: 'TRESOR_AUDIT_CHECKPOINT_ROWS', flag: 'audit-checkpoint-rows' },
  auditCheckpointMinutes: { env: 'TRESOR_AUDIT_CHECKPOINT_MINUTES', flag: 'audit-checkpoint-minutes' },
  decodeWorkers: { env: 'TRESOR_DECODE_WORKERS', flag: 'decode-workers' },
  decodeTimeoutMs: { env: 'TRESOR_DECODE_TIMEOUT_MS', flag: 'decode-timeout-ms' },
  decodeMaxBytes: { env: 'TRESOR_DECODE_MAX_BYTES', flag: 'decode-max-bytes' },
} as const;

export type SettingName = keyof typeof SETTINGS;
export type RawSettings = Partial<Record<SettingName, string>>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** Reads the environment into raw settings (flags, when given, win over it). */
function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): RawSettings {
  const raw: RawSettings = {};
  for (const [name, { env: key }] of Object.entries(SETTINGS) as [SettingName, { env: string }][]) {
    const v = env[key];
    if (v !== undefined && v !== '') raw[name] = v;
  }
  return raw;
}

export function loadConfig(flags: RawSettings = {}, env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const raw: RawSettings = { ...settingsFromEnv(env), ...stripUndefined(flags) };
  const problems: string[] = [];
  const label = (n: SettingName) => `${SETTINGS[n].env} (--${SETTINGS[n].flag})`;

  const int = (n: SettingName, def: number, min: number, max: number): number => {
    const v = raw[n];
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      problems.push(`${label(n)} must be a whole number from ${min} to ${max}, got "${v}"`);
      return def;
    }
    return Number(v);
  };
  const bool = (n: SettingName, def: boolean): boolean => {
    const v = raw[n];
    if (v === undefined) return def;
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    if (/^(0|false|no|off)$/i.test(v)) return false;
    problems.push(`${label(n)} must be true or false, got "${v}"`);
    return def;
  };

  const aeTitle = raw.aeTitle ?? 'TRESOR';
  // PS3.5 §6.2 AE (core/identity/names.ts): 1–16 characters of the default repertoire, no backslash or control characters, not all spaces.
  if (!AE_TITLE_RE.test(aeTitle) || aeTitle.trim() === '') {
    problems.push(`${label('aeTitle')} must be 1–16 printable characters without backslash, not all spaces`);
  }

  const databaseUrl = raw.databaseUrl;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push(`${label('databaseUrl')} must start with postgres:// or postgresql://`);
  }

  let s3: S3Config | undefined;
  const s3Given = (['s3Endpoint', 's3AccessKey', 's3SecretKey', 's3Bucket'] as const).filter((n) => raw[n] !== undefined);
  if (s3Given.length > 0) {
    for (const n of ['s3Endpoint', 's3AccessKey', 's3SecretKey', 's3Bucket'] as const) {
      if (raw[n] === undefined) problems.push(`${label(n)} is required when any S3 setting is given`);
    }
    const bucket = raw.s3Bucket ?? '';
    if (bucket && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) problems.push(`${label('s3Bucket')} is not a valid bucket name`);
    s3 = {
      endPoint: raw.s3Endpoint ?? '',
      port: raw.s3Port === undefined ? undefined : int('s3Port', 9000, 1, 65535),
      useSSL: bool('s3UseSsl', true),
      accessKey: raw.s3AccessKey ?? '',
      secretKey: raw.s3SecretKey ?? '',
      bucket,
      region: raw.s3Region ?? 'us-east-1',
      partSize: int('s3PartSize', 5 * GiB, 5 * MiB, 5 * GiB),
      timeoutMs: int('s3TimeoutMs', 30_000, 100, 600_000),
      allowPlaintext: bool('s3AllowPlaintext', false),
    };
    // Patient data and the S3 secret's signatures must not cross a network in clear:
    // plain HTTP only to this host, unless the operator says so explicitly.
    if (!s3.useSSL && s3.endPoint && !isLoopbackHost(s3.endPoint) && !s3.allowPlaintext) {
      problems.push(
        `${label('s3UseSsl')} is false but ${label('s3Endpoint')} "${s3.endPoint}" is not a loopback address: ` +
          `patient data would cross the network unencrypted. Use TLS (${SETTINGS.s3UseSsl.env}=true), or, only on a ` +
          `network you trust, set ${label('s3AllowPlaintext')}=true`,
      );
    }
  }

  const tls = { cert: raw.tlsCert, key: raw.tlsKey, ca: raw.tlsCa, caKey: raw.tlsCaKey };
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    problems.push(`${label('tlsCert')} and ${label('tlsKey')} must be given together`);
  }
  if (tls.caKey !== undefined && (tls.cert === undefined || tls.ca === undefined)) {
    problems.push(`${label('tlsCaKey')} is the key of your own CA: give it with ${label('tlsCert')}, ${label('tlsKey')} and ${label('tlsCa')} (without them Tresor generates its own CA)`);
  }

  // Checked here (one message per name) rather than when the certificate is generated.
  const tlsHostnames = (raw.tlsHostnames ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const h of tlsHostnames) {
    if (isIP(h) === 0 && !/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(h)) {
      problems.push(`${label('tlsHostnames')}: "${h}" is not a host name or IP address (comma-separated list)`);
    }
  }

  const publicUrl = raw.publicUrl;
  if (publicUrl !== undefined && !/^https:\/\/[^\s]+[^/]$/.test(publicUrl)) {
    problems.push(`${label('publicUrl')} must be an https:// URL without a trailing slash`);
  }

  const corsOrigins = (raw.corsOrigins ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const o of corsOrigins) {
    if (!/^https?:\/\/[^/\s]+$/.test(o)) problems.push(`${label('corsOrigins')}: "${o}" is not an origin (scheme://host[:port])`);
  }

  const logLevel = raw.logLevel ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    problems.push(`${label('logLevel')} must be one of fatal, error, warn, info, debug, trace, silent`);
  }

  // The rules every password follows (core/identity/passwords.ts), named by the variable.
  const adminPassword = raw.adminPassword;
  if (adminPassword !== undefined) {
    try {
      checkPasswordRules(adminPassword, { accountName: BOOTSTRAP_USERNAME });
    } catch (e) {
      problems.push(`${label('adminPassword')}: ${(e as Error).message.replace(/^the password /, '')} ("${BOOTSTRAP_USERNAME}")`);
    }
  }

  // Metrics are off unless a port is given. Anywhere but loopback the scrape needs a
  // credential: the counters tell an outsider how busy the archive is and who fails to log in.
  let metrics: Config['metrics'];
  if (raw.metricsPort !== undefined) {
    const host = raw.metricsHost ?? '127.0.0.1';
    metrics = { port: int('metricsPort', 9464, 0, 65535), host, tokenFile: raw.metricsTokenFile };
    if (!isLoopbackHost(host) && raw.metricsTokenFile === undefined) {
      problems.push(
        `${label('metricsHost')} "${host}" is not a loopback address: set ${label('metricsTokenFile')} to a file (mode 0600) holding the bearer token scrapers must send, or bind metrics to 127.0.0.1`,
      );
    }
  } else if (raw.metricsHost !== undefined || raw.metricsTokenFile !== undefined) {
    problems.push(`${label('metricsHost')} and ${label('metricsTokenFile')} need ${label('metricsPort')} (metrics are off without it)`);
  }

  const config: Config = {
    dataDir: path.resolve(raw.dataDir ?? 'data'),
    host: raw.host ?? '127.0.0.1',
    dimsePort: int('dimsePort', 2762, 0, 65535),
    httpPort: int('httpPort', 8443, 0, 65535),
    aeTitle,
    databaseUrl,
    s3,
    tls,
    tlsHostnames,
    adminPassword,
    publicUrl,
    corsOrigins,
    viewerDir: path.resolve(raw.viewerDir ?? defaultViewerDir()),
    logLevel,
    limits: {
      maxObjectBytes: int('maxObjectBytes', 2 * GiB, 1024, 64 * GiB),
      maxRequestBytes: int('maxRequestBytes', 4 * GiB, 1024, 256 * GiB),
      maxParts: int('maxParts', 1000, 1, 100000),
      maxAssociations: int('maxAssociations', 64, 1, 10000),
      maxAssociationsPerAddress: int('maxAssociationsPerAddress', 16, 1, 10000),
      maxPduBytes: int('maxPduBytes', 1 * MiB, 4096, 64 * MiB),
    },
    dimseRequireBoth: bool('dimseRequireBoth', false),
    tokenTtlSeconds: int('tokenTtlSeconds', 600, 30, 3600),
    session: { idleMinutes: int('sessionIdleMinutes', 30, 1, 1440), maxHours: int('sessionMaxHours', 12, 1, 720) },
    metrics,
    startupWaitSeconds: int('startupWaitSeconds', 60, 0, 3600),
    masterKeyFile: raw.masterKeyFile === undefined ? undefined : path.resolve(raw.masterKeyFile),
    audit: {
      checkpointEveryRows: int('auditCheckpointRows', 1000, 1, 10_000_000),
      checkpointEveryMinutes: int('auditCheckpointMinutes', 10, 1, 1440),
    },
    decode: {
      // Two children: one bomb being killed never stops all decoding; more compete with the server for CPU.
      workers: int('decodeWorkers', 2, 1, 16),
      timeoutMs: int('decodeTimeoutMs', 30_000, 1_000, 600_000),
      maxOutputBytes: int('decodeMaxBytes', 256 * MiB, 1 * MiB, 2 * GiB),
    },
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

/**
 * vendor/ohif/dist of the installed package (npm ci's postinstall puts it there): the
 * nearest folder above this module with a package.json, so it is the same from src/
 * (tsx, tests) and from dist/src/ (npm start).
 */
export function defaultViewerDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, 'vendor', 'ohif', 'dist');
}

/** Loopback S3 endpoints may be spoken to in plain HTTP: the bytes never leave this host. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

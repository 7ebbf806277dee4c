// The server settings (src/config.ts) as flags of `serve` and the offline commands: each
// flag's help names its environment variable and its default. Flags win over the
// environment; config.ts checks everything and reports every problem at once.

import type { Command } from 'commander';
import { ConfigError, loadConfig, SETTINGS, type Config, type RawSettings, type SettingName } from '../config.js';
import { usageError } from './output.js';

/** What each setting does and its default (config.ts holds the authoritative defaults). */
export const SETTING_HELP: Record<SettingName, string> = {
  dataDir: 'data directory: embedded database, blobs, TLS files, token keys (default: ./data)',
  host: 'address the HTTPS and DICOM listeners bind to (default: 127.0.0.1)',
  dimsePort: 'DICOM TLS port (default: 2762)',
  httpPort: 'HTTPS port (default: 8443)',
  aeTitle: "Tresor's AE title (default: TRESOR)",
  databaseUrl: 'PostgreSQL URL (default: the embedded database in <data-dir>/pgdata)',
  s3Endpoint: 'S3 host for blobs (default: files in <data-dir>)',
  s3Port: 'S3 port (default: 443 with TLS, else 80)',
  s3UseSsl: 'S3 over TLS: true or false (default: true)',
  s3AccessKey: 'S3 access key',
  s3SecretKey: 'S3 secret key',
  s3Bucket: 'S3 bucket',
  s3Region: 'S3 region (default: us-east-1)',
  s3PartSize: 'S3 multipart part size in bytes (default: 5 GiB, min 5 MiB)',
  s3TimeoutMs: 'S3: a request with no byte either way for this long fails, ms (default: 30000)',
  s3AllowPlaintext: 'allow S3 without TLS to an endpoint other than loopback: true or false (default: false; warns at every start)',
  tlsCert: 'your own server certificate (PEM; default: generated in <data-dir>/tls)',
  tlsKey: "your own server certificate's key (PEM)",
  tlsCa: 'your own CA certificate (PEM)',
  tlsCaKey: "your own CA's private key (PEM, mode 0600): Tresor then issues device certificates from your CA (default: none; device certificates cannot be issued with your own PKI)",
  tlsHostnames: 'extra names or addresses in the generated server certificate, comma-separated (default: none; localhost, 127.0.0.1, ::1 and the host name are always in it)',
  adminPassword: "first admin's password on an empty database, ≥ 12 characters (default: generated into <data-dir>/initial-admin-password)",
  publicUrl: 'public https:// base URL for links (default: from the listener)',
  corsOrigins: 'origins allowed by CORS, comma-separated (default: none)',
  viewerDir: "the built-in viewer's files, OHIF's prebuilt dist/ (default: vendor/ohif/dist of the installed package, fetched by npm ci)",
  logLevel: 'fatal, error, warn, info, debug, trace or silent (default: info)',
  maxObjectBytes: 'largest DICOM object accepted, bytes (default: 2 GiB)',
  maxRequestBytes: 'largest STOW-RS request, bytes (default: 4 GiB)',
  maxParts: 'most parts in one STOW-RS request (default: 1000)',
  maxAssociations: 'most concurrent DICOM associations (default: 64)',
  maxAssociationsPerAddress: 'most concurrent DICOM associations per address (default: 16)',
  maxPduBytes: 'largest PDU accepted, bytes (default: 1 MiB)',
  dimseRequireBoth: 'DICOM: require a client certificate and user identity: true or false (default: false)',
  tokenTtlSeconds: 'access-token lifetime in seconds, 30–3600 (default: 600)',
  sessionIdleMinutes: 'browser session idle timeout in minutes, 1–1440 (default: 30)',
  sessionMaxHours: 'browser session absolute lifetime in hours, 1–720 (default: 12)',
  metricsPort: 'Prometheus /metrics port (default: off)',
  metricsHost: 'address the metrics listener binds to (default: 127.0.0.1; any other needs --metrics-token-file)',
  metricsTokenFile: 'file (mode 0600) with the bearer token a scraper must send to /metrics (default: none; required off loopback)',
  startupWaitSeconds: 'how long start-up retries an unreachable database or S3 before giving up, seconds (default: 60)',
  masterKeyFile: 'file with ≥ 32 random bytes (`tresor keygen`), mode 0600: CA, server certificate and token keys then live in the database sealed under it; the same file on every node (default: none, keys in <data-dir>)',
  auditCheckpointRows: 'a signed audit checkpoint in <data-dir>/audit-checkpoints.jsonl after this many audit rows (default: 1000)',
  auditCheckpointMinutes: 'and at least this often while the audit trail grows, minutes; also at shutdown (default: 10)',
  decodeWorkers: 'child processes that decode pixel data (transcoding, rendering), 1–16 (default: 2)',
  decodeTimeoutMs: 'longest one decoding job may run or wait, ms (default: 30000)',
  decodeMaxBytes: 'most decoded pixel bytes one request may produce, bytes (default: 256 MiB)',
};

/** Every setting as a flag; the environment variable of the same setting is the fallback. */
export function withSettings(cmd: Command): Command {
  // Commander names each option by camel-casing its flag, which is exactly the
  // setting's name in config.ts (--dimse-port → dimsePort).
  for (const [name, s] of Object.entries(SETTINGS) as [SettingName, { env: string; flag: string }][]) {
    cmd.option(`--${s.flag} <value>`, `${SETTING_HELP[name]} [env ${s.env}]`);
  }
  return cmd;
}

/** The configuration from flags and environment; a bad one is a usage error (exit 2). */
export function configFrom(opts: Record<string, unknown>): Readonly<Config> {
  const flags: RawSettings = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) if (typeof opts[name] === 'string') flags[name] = opts[name];
  try {
    return loadConfig(flags);
  } catch (e) {
    if (e instanceof ConfigError) throw usageError(e.message);
    throw e;
  }
}

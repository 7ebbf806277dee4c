// The online commands' client of the admin API: HTTPS with only the given CA trusted
// (node:https with `ca` replaces the system roots), one login at POST /auth/token, then
// bearer requests. The server decides and audits every operation exactly as for the
// console; the CLI only maps answers to exit codes (output.ts).

import { readFileSync } from 'node:fs';
import https from 'node:https';
import { Option, type Command } from 'commander';
import { adminPassword } from './credentials.js';
import { refused, usageError } from './output.js';

export interface ServerOptions {
  url: string;
  ca?: string;
  user: string;
  passwordFile?: string;
  json?: boolean;
}

/** --url --ca --user --password-file --json, each with its environment variable. */
export function withServerOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--url <url>', "Tresor's HTTPS base URL").env('TRESOR_URL').default('https://127.0.0.1:8443'))
    .addOption(new Option('--ca <file>', "the CA certificate to trust (Tresor's <data>/tls/ca.crt); only it is trusted (default: the system's CAs)").env('TRESOR_CA'))
    .addOption(new Option('--user <name>', 'the administrator to log in as').env('TRESOR_USER').default('admin'))
    .addOption(new Option('--password-file <file>', "file holding the administrator's password, mode 0600 (default: asked on the terminal)").env('TRESOR_PASSWORD_FILE'))
    .option('--json', 'print JSON for programs instead of text', false);
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
]);

interface Answer {
  status: number;
  body: any;
}

export interface ApiClient {
  request(method: string, path: string, body?: unknown): Promise<any>;
}

function parseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usageError(`--url ${url} is not a URL: give e.g. https://tresor.example:8443`);
  }
  if (u.protocol !== 'https:') throw usageError(`--url ${url}: Tresor speaks HTTPS only; use https://`);
  return u;
}

function send(base: URL, ca: string | undefined, method: string, path: string, body: unknown, token?: string): Promise<Answer> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(path, base),
      {
        method,
        ca,
        agent: false,
        timeout: 30_000,
        headers: {
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = { error: { code: 'not-json', message: text.slice(0, 200) } };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 30 s'), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => reject(connectionError(base, e)));
    req.end(payload);
  });
}

const apiMessage = (a: Answer): string => {
  const e = a.body?.error;
  return e && typeof e.message === 'string' ? `${e.message} (${a.status} ${e.code})` : `HTTP ${a.status}`;
};

/** A logged-in session: what a command that streams its own requests (import) needs. */
export interface Session {
  base: URL;
  ca: string | undefined;
  token(): string;
  /** Logs in again (a long import outlives the token's lifetime); exit 2 when refused. */
  relogin(): Promise<void>;
}

function readCa(opts: ServerOptions): string | undefined {
  if (!opts.ca) return undefined;
  try {
    return readFileSync(opts.ca, 'utf8');
  } catch (e) {
    throw usageError(`--ca ${opts.ca}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}; give Tresor's CA file (<data>/tls/ca.crt)`);
  }
}

/**
 * The user's own password change (POST /auth/password), the forced first change
 * included: a token whose password must be changed may call only that route. The
 * server checks the rules and audits; refused (exit 1) with its reason.
 */
export async function changeOwnPassword(opts: ServerOptions, newPassword: string): Promise<void> {
  const base = parseUrl(opts.url);
  const ca = readCa(opts);
  const currentPassword = await adminPassword(opts);
  const login = await send(base, ca, 'POST', '/auth/token', { username: opts.user, password: currentPassword });
  if (login.status !== 200) throw usageError(`login as ${opts.user} refused: ${apiMessage(login)}; check --user and --password-file (the current password)`);
  const a = await send(base, ca, 'POST', '/auth/password', { currentPassword, newPassword }, String(login.body.access_token));
  if (a.status !== 200) throw refused(`password not changed: ${apiMessage(a)}`);
}

/** Logs in (exit 2 when refused) and keeps the password to log in again when the token expires. */
export async function openSession(opts: ServerOptions): Promise<Session> {
  const base = parseUrl(opts.url);
  const ca = readCa(opts);
  const password = await adminPassword(opts);
  const login = async (): Promise<string> => {
    const a = await send(base, ca, 'POST', '/auth/token', { username: opts.user, password });
    if (a.status !== 200) {
      throw usageError(`login as ${opts.user} refused: ${apiMessage(a)}; check --user and --password-file`);
    }
    if (a.body.password_change_required) {
      throw usageError(`${opts.user} must change its one-time password first: run tresor password --user ${opts.user} (or use the console)`);
    }
    return String(a.body.access_token);
  };
  let token = await login();
  return {
    base,
    ca,
    token: () => token,
    async relogin() {
      token = await login();
    },
  };
}

/** Logs in (exit 2 when refused) and returns a client for the admin API. */
export async function connect(opts: ServerOptions): Promise<ApiClient> {
  const s = await openSession(opts);
  return {
    async request(method, path, body) {
      const a = await send(s.base, s.ca, method, path, body, s.token());
      if (a.status >= 200 && a.status < 300) return a.body;
      if (a.status === 401) throw usageError(`the server no longer accepts the login: ${apiMessage(a)}; run the command again`);
      throw refused(`refused: ${apiMessage(a)}`);
    },
  };
}

/** The one line for a failed network request: a TLS check or an unreachable server (exit 2). */
export function connectionError(base: URL, e: NodeJS.ErrnoException): Error {
  const code = e.code ?? 'error';
  if (TLS_CODES.has(code)) {
    return usageError(`TLS check of ${base.origin} failed (${code}): give Tresor's CA with --ca or TRESOR_CA (<data>/tls/ca.crt), and a --url host the certificate names`);
  }
  return usageError(`cannot reach ${base.origin} (${code}): check --url or TRESOR_URL and that tresor serve is running`);
}

/** A path segment, percent-encoded (AE titles may contain spaces). */
export const seg = (s: string): string => encodeURIComponent(s);

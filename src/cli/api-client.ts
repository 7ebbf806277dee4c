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
    req.on('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? 'error';
      if (TLS_CODES.has(code)) {
        reject(usageError(`TLS check of ${base.origin} failed (${code}): give Tresor's CA with --ca or TRESOR_CA (<data>/tls/ca.crt), and a --url host the certificate names`));
      } else {
        reject(usageError(`cannot reach ${base.origin} (${code}): check --url or TRESOR_URL and that tresor serve is running`));
      }
    });
    req.end(payload);
  });
}

const apiMessage = (a: Answer): string => {
  const e = a.body?.error;
  return e && typeof e.message === 'string' ? `${e.message} (${a.status} ${e.code})` : `HTTP ${a.status}`;
};

/** Logs in (exit 2 when refused) and returns a client for the admin API. */
export async function connect(opts: ServerOptions): Promise<ApiClient> {
  const base = parseUrl(opts.url);
  let ca: string | undefined;
  if (opts.ca) {
    try {
      ca = readFileSync(opts.ca, 'utf8');
    } catch (e) {
      throw usageError(`--ca ${opts.ca}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}; give Tresor's CA file (<data>/tls/ca.crt)`);
    }
  }
  const password = await adminPassword(opts);
  const login = await send(base, ca, 'POST', '/auth/token', { username: opts.user, password });
  if (login.status !== 200) {
    throw usageError(`login as ${opts.user} refused: ${apiMessage(login)}; check --user and --password-file`);
  }
  if (login.body.password_change_required) {
    throw usageError(`${opts.user} must change its one-time password first: POST /auth/password (see README, first steps) or the console`);
  }
  const token = String(login.body.access_token);
  return {
    async request(method, path, body) {
      const a = await send(base, ca, method, path, body, token);
      if (a.status >= 200 && a.status < 300) return a.body;
      if (a.status === 401) throw usageError(`the server no longer accepts the login: ${apiMessage(a)}; run the command again`);
      throw refused(`refused: ${apiMessage(a)}`);
    },
  };
}

/** A path segment, percent-encoded (AE titles may contain spaces). */
export const seg = (s: string): string => encodeURIComponent(s);

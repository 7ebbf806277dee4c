// The console's one way to talk to Tresor: same-origin fetch with the session cookie
// (HttpOnly, so this code never sees it). The CSRF token lives in this module's memory
// only — never in localStorage, sessionStorage or a URL — and goes with every request
// that changes something (X-CSRF-Token). After a reload it is read again from
// GET /auth/session. Errors come back as ApiError with the server's {error:{code,message}}.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let csrfToken: string | null = null;
let sessionLost: (() => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when a request that needed the session gets 401 (expired, logged out elsewhere). */
export function onSessionLost(cb: (() => void) | null): void {
  sessionLost = cb;
}

/** Activity listeners (the session timer): told after each answered request. */
const activity = new Set<() => void>();
export function onActivity(cb: () => void): () => void {
  activity.add(cb);
  return () => activity.delete(cb);
}

export interface RequestOptions {
  body?: unknown;
  accept?: string;
  /** A 401 here is an answer (login, session probe), not a lost session. */
  anonymous?: boolean;
  query?: Record<string, string | string[] | undefined>;
}

export function withQuery(path: string, query: RequestOptions['query']): string {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** One path segment (AE titles may hold spaces and other characters). */
export const seg = (s: string): string => encodeURIComponent(s);

export async function request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: opts.accept ?? 'application/json' };
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(withQuery(path, opts.query), { method, headers, body, credentials: 'same-origin', cache: 'no-store', redirect: 'error' });
  } catch {
    throw new ApiError(0, 'network', 'Tresor did not answer. Check the network connection and that the Tresor server is running, then try again.');
  }
  if (res.ok) {
    for (const cb of activity) cb();
    return res;
  }
  const err = await errorOf(res);
  if (res.status === 401 && !opts.anonymous) sessionLost?.();
  else for (const cb of activity) cb();
  throw err;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `http-${res.status}`;
  let message = '';
  let retryAfter: number | undefined;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string; retryAfterSeconds?: number } };
    if (body?.error?.code) code = body.error.code;
    if (body?.error?.message) message = body.error.message;
    if (typeof body?.error?.retryAfterSeconds === 'number') retryAfter = body.error.retryAfterSeconds;
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  const header = res.headers.get('retry-after');
  if (retryAfter === undefined && header && /^\d+$/.test(header)) retryAfter = Number(header);
  return new ApiError(res.status, code, message, retryAfter);
}

export async function getJson<T>(path: string, query?: RequestOptions['query']): Promise<T> {
  return (await request('GET', path, { query })).json() as Promise<T>;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(method, path, { body });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

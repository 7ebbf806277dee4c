// Media types and content negotiation for DICOMweb (PS3.18 §8.7.3, §8.7.8).
// The Accept header is a list of media ranges with parameters; DICOM adds the
// `type` parameter of multipart/related and the `transfer-syntax` parameter
// (PS3.18 §8.7.3.5.2: a UID or "*", at most one per media range).

export interface MediaRange {
  type: string; // lower case, may be '*'
  subtype: string; // lower case, may be '*'
  params: Record<string, string>; // names lower case; values unquoted, case kept
  q: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const MAX_ACCEPT_LENGTH = 4096;
const MAX_RANGES = 32;

/** Splits on `sep` outside double-quoted strings. */
function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted && c === '\\' && i + 1 < s.length) {
      cur += c + s[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function unquote(v: string): string {
  const t = v.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/\\(.)/g, '$1');
  return t;
}

/** Parses one media type (Content-Type or one Accept element); null when malformed. */
export function parseMediaType(s: string): MediaRange | null {
  const [head, ...rest] = splitOutsideQuotes(s, ';');
  const [type, subtype, extra] = head.trim().toLowerCase().split('/');
  if (!type || !subtype || extra !== undefined || !TOKEN.test(type) || !TOKEN.test(subtype)) return null;
  const params: Record<string, string> = {};
  let q = 1;
  for (const p of rest) {
    if (!p.trim()) continue;
    const eq = p.indexOf('=');
    if (eq < 0) return null;
    const name = p.slice(0, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) return null;
    const value = unquote(p.slice(eq + 1));
    if (name === 'q') {
      const n = Number(value);
      if (!/^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value) || !Number.isFinite(n)) return null;
      q = n;
      continue;
    }
    // RFC 6838 §4.3: a parameter given twice is an error.
    if (name in params) return null;
    params[name] = value;
  }
  return { type, subtype, params, q };
}

/**
 * Parses an Accept header (or the `accept` query parameter, PS3.18 §8.3.3.1).
 * Absent or empty means anything (RFC 9110 §12.5.1). Throws on malformed input,
 * which the routes answer with 400.
 */
export function parseAccept(header: string | string[] | undefined): MediaRange[] {
  const raw = Array.isArray(header) ? header.join(',') : header;
  if (raw === undefined || raw.trim() === '') return [{ type: '*', subtype: '*', params: {}, q: 1 }];
  if (raw.length > MAX_ACCEPT_LENGTH) throw new AcceptError('The Accept header is too long.');
  const parts = splitOutsideQuotes(raw, ',').filter((p) => p.trim() !== '');
  if (parts.length > MAX_RANGES) throw new AcceptError('The Accept header lists too many media types.');
  const out: MediaRange[] = [];
  for (const p of parts) {
    const m = parseMediaType(p);
    if (!m) throw new AcceptError('The Accept header is malformed.');
    if (m.q > 0) out.push(m);
  }
  // Stable sort: higher q first, then the order given.
  return out.map((m, i) => ({ m, i })).sort((a, b) => b.m.q - a.m.q || a.i - b.i).map((x) => x.m);
}

export class AcceptError extends Error {}

/** Whether a media range accepts `type/subtype`. */
export function rangeMatches(r: MediaRange, type: string, subtype: string): boolean {
  return (r.type === '*' || r.type === type) && (r.subtype === '*' || r.subtype === subtype);
}

/** The `type` parameter of a multipart/related range, parsed (e.g. application/dicom). */
export function multipartType(r: MediaRange): { type: string; subtype: string } | null {
  const t = r.params['type'];
  if (t === undefined) return null;
  const [type, subtype] = t.trim().toLowerCase().split('/');
  return type && subtype ? { type, subtype } : null;
}

/** Quotes a parameter value when it is not a token (RFC 9110 §5.6.6). */
export function paramValue(v: string): string {
  return TOKEN.test(v) ? v : `"${v.replace(/["\\]/g, '\\$&')}"`;
}

// Display formats. Dates are shown as YYYY-MM-DD (never ambiguous between countries),
// times in the browser's local time zone.

const two = (n: number): string => String(n).padStart(2, '0');

export function formatClock(d: Date): string {
  return `${two(d.getHours())}:${two(d.getMinutes())}`;
}

export function formatDate(d: Date): string {
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
}

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${formatDate(d)} ${formatClock(d)}`;
}

/** "in 3 days", "2 hours ago": for certificate expiry and last contact. */
export function relativeTime(iso: string | null | undefined, now = new Date()): string {
  if (!iso) return '';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return '';
  const s = Math.round((t - now.getTime()) / 1000);
  const words = formatDuration(Math.abs(s));
  return s >= 0 ? `in ${words}` : `${words} ago`;
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s === 1 ? '1 second' : `${s} seconds`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? '1 minute' : `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h < 48) return h === 1 ? '1 hour' : `${h} hours`;
  const d = Math.round(s / 86400);
  return `${d} days`;
}

/** DICOM DA (PS3.5 §6.2: YYYYMMDD) → YYYY-MM-DD. */
export function formatDicomDate(da: string | undefined): string {
  if (!da) return '';
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : da;
}

/** YYYY-MM-DD (an <input type=date> value) → DICOM DA. */
export function toDicomDate(value: string): string {
  return value.replace(/-/g, '');
}

/** DICOM PN "Family^Given^Middle^Prefix^Suffix" (PS3.5 §6.2.1) → "Family, Given Middle". */
export function formatPersonName(pn: string | undefined): string {
  if (!pn) return '';
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = pn.split('^');
  const first = [prefix, given, middle].filter(Boolean).join(' ');
  const last = [family, suffix].filter(Boolean).join(' ');
  return first && last ? `${last}, ${first}` : last || first;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

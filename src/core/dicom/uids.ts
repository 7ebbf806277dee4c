// UID rules (PS3.5 §9.1): components of digits separated by dots, at most 64
// characters. We accept leading zeros inside components (seen in real devices'
// output) but nothing that is not a digit or a dot, so a UID can never carry a
// path separator, a quote or a wildcard into a query, a path or a log line.

const UID_RE = /^[0-9]+(\.[0-9]+)*$/;

export function isValidUid(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= 64 && UID_RE.test(s);
}

// Transfer syntax UIDs live in transfer-syntaxes.ts (the registry).

// Our implementation identity in the File Meta Information (PS3.10 §7.1).
export const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1376.1';
export const IMPLEMENTATION_VERSION_NAME = 'TRESOR_010';

// How an association says it came through `tresor edge`. The TLS identity Tresor
// sees is the device's own certificate (the edge holds it), so the edge cannot
// prove itself cryptographically on that association; it announces itself in the
// A-ASSOCIATE-RQ's Implementation Version Name (PS3.7 §D.3.3.2.3, up to 16
// characters of the default repertoire), which Tresor copies into the audit
// detail. Self-declared: it makes edges visible, it grants nothing.

export const EDGE_VERSION_PREFIX = 'EDGE:';

/** An edge name fits in the 16 characters after the prefix (PS3.7 §D.3.3.2.3). */
export const EDGE_NAME_PATTERN = /^[A-Z0-9_-]{1,11}$/;

/** The Implementation Version Name an edge puts into the requests it forwards. */
export function edgeVersionName(name: string): string {
  return `${EDGE_VERSION_PREFIX}${name}`;
}

/** The edge's name when the request came through an edge, else undefined. */
export function edgeOf(implementationVersion: string | undefined): string | undefined {
  if (!implementationVersion?.startsWith(EDGE_VERSION_PREFIX)) return undefined;
  const name = implementationVersion.slice(EDGE_VERSION_PREFIX.length);
  return EDGE_NAME_PATTERN.test(name) ? name : undefined;
}

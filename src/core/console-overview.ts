// What the console's system page and edge list show (issue 9, issue 12): read-only
// overviews for global admins. Both are installation-wide facts (every department's
// counts, every device's certificate, the association audit trail), so only a global
// admin sees them; anyone else gets not-found (ARCHITECTURE.md rule 3: the console
// shows the page only to global admins, and no one else learns it exists).
// Reading the edge list reads the audit trail, and is audited as such (PS3.15 A.5.3.2).

import { actorOf } from './identity/context.js';
import { canAdministerSystem } from './access.js';
import { notFound } from './errors.js';
import type { AuditLog } from './audit.js';
import type { Principal } from './principal.js';

export interface InstallationCounts {
  departments: number;
  users: number;
  devices: number;
  studies: number;
  series: number;
  instances: number;
  bytes: number;
}

export interface EdgeContact {
  /** The name the edge announces (edge/announce.ts): self-declared, for visibility only. */
  edge: string;
  /** The device (AE title) whose association came through it. */
  aeTitle: string;
  lastContact: string;
  /** Associations seen, and the address of the last one. */
  associations: number;
  source: string | null;
}

/** Read-only queries behind the overviews (db/console.repo.ts). */
export interface OverviewRepo {
  counts(): Promise<InstallationCounts>;
  deviceCertificates(): Promise<{ aeTitle: string; notAfter: string | null }[]>;
  edgeContacts(): Promise<EdgeContact[]>;
}

export interface HealthProbe {
  (): Promise<void>;
}

export interface SystemStatus {
  version: string;
  health: { database: 'ok' | 'failing'; blobStore: 'ok' | 'failing' };
  counts: InstallationCounts;
  certificates: { ca: { notAfter: string }; server: { notAfter: string }; devices: { aeTitle: string; notAfter: string | null }[] };
  disk: { dataDir: { freeBytes: number; totalBytes: number } | null };
}

export interface EdgeView {
  name: string;
  lastContact: string;
  devices: { aeTitle: string; lastContact: string; associations: number; source: string | null }[];
}

export interface ConsoleOverviewDeps {
  repo: OverviewRepo;
  audit: Pick<AuditLog, 'record'>;
  version: string;
  probes: { database: HealthProbe; blobStore: HealthProbe };
  /** End dates of Tresor's CA and server certificates (from the loaded PKI). */
  tlsNotAfter: () => { ca: string; server: string };
  /** Free and total bytes of the data directory's file system, or null when unknown. */
  diskSpace: () => Promise<{ freeBytes: number; totalBytes: number } | null>;
}

const PROBE_TIMEOUT_MS = 3_000;

async function probe(p: HealthProbe): Promise<'ok' | 'failing'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), PROBE_TIMEOUT_MS)))]);
    return 'ok';
  } catch {
    return 'failing';
  } finally {
    clearTimeout(timer);
  }
}

/** Global administrators only (core/access.ts), and only people: not the offline SYSTEM principal. */
function requireGlobalAdmin(p: Principal): void {
  if (p.kind !== 'user' || !canAdministerSystem(p)) throw notFound();
}

export function createConsoleOverview(d: ConsoleOverviewDeps) {
  return {
    async system(p: Principal): Promise<SystemStatus> {
      requireGlobalAdmin(p);
      const [database, blobStore] = await Promise.all([probe(d.probes.database), probe(d.probes.blobStore)]);
      // Counts need the database; when it fails, the health says so and counts are zero.
      const counts = database === 'ok' ? await d.repo.counts() : { departments: 0, users: 0, devices: 0, studies: 0, series: 0, instances: 0, bytes: 0 };
      const devices = database === 'ok' ? await d.repo.deviceCertificates() : [];
      const tls = d.tlsNotAfter();
      return {
        version: d.version,
        health: { database, blobStore },
        counts,
        certificates: { ca: { notAfter: tls.ca }, server: { notAfter: tls.server }, devices },
        disk: { dataDir: await d.diskSpace() },
      };
    },

    /** Edges seen in the association audit trail, with the devices behind each (newest first). */
    async edges(p: Principal): Promise<EdgeView[]> {
      requireGlobalAdmin(p);
      const rows = await d.repo.edgeContacts();
      await d.audit.record({ action: 'admin.audit.read', outcome: 'success', principal: actorOf(p), source: p.source, details: { via: 'admin', view: 'edges' } });
      const byEdge = new Map<string, EdgeView>();
      for (const r of rows) {
        const e = byEdge.get(r.edge) ?? { name: r.edge, lastContact: r.lastContact, devices: [] };
        if (r.lastContact > e.lastContact) e.lastContact = r.lastContact;
        e.devices.push({ aeTitle: r.aeTitle, lastContact: r.lastContact, associations: r.associations, source: r.source });
        byEdge.set(r.edge, e);
      }
      return [...byEdge.values()].sort((a, b) => (a.lastContact < b.lastContact ? 1 : -1));
    },
  };
}

export type ConsoleOverview = ReturnType<typeof createConsoleOverview>;

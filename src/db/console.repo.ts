// OverviewRepo (core/console-overview.ts): installation counts, device certificate end
// dates, and the edges seen in the association audit rows (details.edge, written by
// dimse/scp.ts from the edge's announcement).

import type { OverviewRepo } from '../core/console-overview.js';
import type { Db } from './knex.js';

const num = (v: unknown): number => Number(v ?? 0);

export function createOverviewRepo(db: Db): OverviewRepo {
  return {
    async counts() {
      const one = async (table: string) => num((await db(table).count({ n: '*' }).first())?.n);
      const [departments, users, devices, studies, series, instances] = await Promise.all(
        ['departments', 'users', 'devices', 'studies', 'series', 'instances'].map(one),
      );
      const bytes = num((await db('instances').sum({ n: 'size' }).first())?.n);
      return { departments: departments!, users: users!, devices: devices!, studies: studies!, series: series!, instances: instances!, bytes };
    },
    async deviceCertificates() {
      const rows = await db('devices').select('ae_title', 'cert_not_after').orderBy('ae_title');
      return rows.map((r: any) => ({ aeTitle: r.ae_title, notAfter: r.cert_not_after ? new Date(r.cert_not_after).toISOString() : null }));
    },
    async edgeContacts() {
      // Accepted associations only (outcome success): a refused one proves no contact.
      const rows = await db('audit_events')
        .where({ action: 'association', outcome: 'success' })
        .whereRaw(`details->>'edge' IS NOT NULL`)
        .groupByRaw(`details->>'edge', principal_name`)
        .select(db.raw(`details->>'edge' as edge`), 'principal_name', db.raw('max(at) as last'), db.raw('count(*) as n'), db.raw('max(id) as last_id'))
        .orderBy('last', 'desc')
        .limit(1000);
      const sources = new Map<number, string | null>();
      const ids = rows.map((r: any) => Number(r.last_id));
      if (ids.length) for (const r of await db('audit_events').whereIn('id', ids).select('id', 'source')) sources.set(Number(r.id), r.source);
      return rows.map((r: any) => ({
        edge: r.edge,
        aeTitle: r.principal_name ?? '',
        lastContact: new Date(r.last).toISOString(),
        associations: num(r.n),
        source: sources.get(Number(r.last_id)) ?? null,
      }));
    },
  };
}

import { getJson } from '../api';
import { Notice } from '../components/notice';
import { Page, TableWrap } from '../components/page';
import { useLoad } from '../components/use-load';
import { formatDateTime, relativeTime } from '../format';
import { describeError } from '../messages';
import { href } from '../router';

export interface Edge {
  name: string;
  aeTitle?: string | null;
  address?: string | null;
  lastContact?: string | null;
  [k: string]: unknown;
}

const HOUR = 3_600_000;

interface EdgesResponse {
  edges: { name: string; lastContact: string; devices: { aeTitle: string; lastContact: string; associations: number; source: string | null }[] }[];
}

/** One row per modality behind each edge (src/http/routes/console-overview.ts). */
async function loadEdges(): Promise<Edge[]> {
  const r = await getJson<EdgesResponse>('/admin/edges');
  return r.edges.flatMap((e) =>
    e.devices.length === 0 ? [{ name: e.name, lastContact: e.lastContact }] : e.devices.map((d) => ({ name: e.name, aeTitle: d.aeTitle, address: d.source, lastContact: d.lastContact })),
  );
}

export function EdgesPage() {
  const edges = useLoad(loadEdges);
  return (
    <Page
      title="Edges"
      intro={
        <>
          Edges are small gateways next to modalities that cannot use TLS. Add one with <a href={href('/admin/enrol')}>Enrol a modality</a> (“connect it through an
          edge”).
        </>
      }
      actions={
        <button type="button" onClick={edges.reload} disabled={edges.loading}>
          Refresh
        </button>
      }
    >
      <Notice kind="error">{edges.error ? describeError(edges.error, 'The edge list') : null}</Notice>
      {edges.data ? (
        edges.data.length === 0 ? (
          <p>No edge has contacted Tresor yet. An edge appears here after its first connection.</p>
        ) : (
          <TableWrap label="Edges">
            <table class="data">
              <thead>
                <tr>
                  <th scope="col">Edge</th>
                  <th scope="col">Modality (AE title)</th>
                  <th scope="col">Address</th>
                  <th scope="col">Last contact</th>
                </tr>
              </thead>
              <tbody>
                {edges.data.map((e) => {
                  const stale = !e.lastContact || Date.now() - new Date(e.lastContact).getTime() > 24 * HOUR;
                  return (
                    <tr key={`${e.name}/${e.aeTitle ?? ''}`}>
                      <td class="strong">{e.name}</td>
                      <td class="mono">{e.aeTitle ?? '—'}</td>
                      <td class="mono">{e.address ?? '—'}</td>
                      <td class={stale ? 'text-warn' : undefined}>
                        {e.lastContact ? (
                          <>
                            {formatDateTime(e.lastContact)} <span class="sub">({relativeTime(e.lastContact)})</span>
                          </>
                        ) : (
                          'never'
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </TableWrap>
        )
      ) : edges.loading ? (
        <p>Loading…</p>
      ) : null}
    </Page>
  );
}

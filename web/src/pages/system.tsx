import { getJson } from '../api';
import { Notice } from '../components/notice';
import { Page, TableWrap } from '../components/page';
import { useLoad } from '../components/use-load';
import { formatBytes, formatDateTime, relativeTime } from '../format';
import { describeError } from '../messages';

interface Health {
  ok: boolean;
  kind?: string;
  detail?: string;
  message?: string;
}

interface Certificate {
  name: string;
  kind?: string;
  subject?: string;
  notAfter: string | null;
}

export interface SystemInfo {
  version?: string;
  database?: Health;
  blobStore?: Health;
  counts?: Record<string, number>;
  certificates?: Certificate[];
  disk?: { path?: string; freeBytes?: number; totalBytes?: number } | null;
  storedBytes?: number;
  [k: string]: unknown;
}

const DAY = 86_400_000;

/** GET /console/api/system as the server answers it (src/http/routes/console-overview.ts). */
interface SystemResponse {
  version: string;
  health: { database: 'ok' | 'failing'; blobStore: 'ok' | 'failing' };
  counts: Record<string, number>;
  certificates: { ca: { notAfter: string }; server: { notAfter: string }; devices: { aeTitle: string; notAfter: string | null }[] };
  disk: { dataDir: { freeBytes: number; totalBytes: number } | null };
}

export async function loadSystem(): Promise<SystemInfo> {
  const r = await getJson<SystemResponse>('/console/api/system');
  const { bytes, ...counts } = r.counts;
  return {
    version: r.version,
    database: { ok: r.health.database === 'ok' },
    blobStore: { ok: r.health.blobStore === 'ok' },
    counts,
    storedBytes: bytes,
    certificates: [
      { name: 'Tresor CA', kind: 'certificate authority', notAfter: r.certificates.ca.notAfter },
      { name: 'Tresor server', kind: 'HTTPS and DICOM TLS', notAfter: r.certificates.server.notAfter },
      ...r.certificates.devices.map((d) => ({ name: d.aeTitle, kind: 'device', notAfter: d.notAfter })),
    ],
    disk: r.disk.dataDir,
  };
}

function HealthRow({ label, h }: { label: string; h: Health | undefined }) {
  if (!h) return null;
  return (
    <tr>
      <th scope="row">{label}</th>
      <td>
        {h.ok ? <span class="badge badge-on">working</span> : <span class="badge badge-off">not working</span>} {h.kind ? <span class="sub">{h.kind}</span> : null}
        {!h.ok && (h.detail || h.message) ? <div class="text-danger small">{h.detail ?? h.message}</div> : null}
      </td>
    </tr>
  );
}

function expiryClass(notAfter: string | null): string | undefined {
  if (!notAfter) return undefined;
  const left = new Date(notAfter).getTime() - Date.now();
  if (left < 0) return 'text-danger';
  if (left < 30 * DAY) return 'text-warn';
  return undefined;
}

export function SystemPage() {
  const info = useLoad(loadSystem);
  const s = info.data;
  const diskLow = s?.disk?.freeBytes !== undefined && s.disk.totalBytes ? s.disk.freeBytes / s.disk.totalBytes < 0.1 : false;
  const soon = (s?.certificates ?? []).filter((c) => c.notAfter && new Date(c.notAfter).getTime() - Date.now() < 30 * DAY);
  return (
    <Page
      title="System"
      intro="The state of this Tresor server."
      actions={
        <button type="button" onClick={info.reload} disabled={info.loading}>
          {info.loading ? 'Checking…' : 'Check again'}
        </button>
      }
    >
      <Notice kind="error">{info.error ? describeError(info.error, 'The system status') : null}</Notice>
      {s && (s.database?.ok === false || s.blobStore?.ok === false) ? (
        <Notice kind="error">Part of Tresor is not working (see below): storing and viewing may fail. Ask whoever runs the Tresor server to look at its log.</Notice>
      ) : null}
      {diskLow ? <Notice kind="warning">Less than 10% of the disk is free. Free space or add storage soon, or Tresor will refuse new studies.</Notice> : null}
      {soon.length > 0 ? (
        <Notice kind="warning">
          {soon.length === 1 ? 'A certificate expires' : `${soon.length} certificates expire`} within 30 days ({soon.map((c) => c.name).join(', ')}). Renew server
          certificates with <code>tresor tls renew</code>; give devices a new bundle on the Devices page.
        </Notice>
      ) : null}
      {s ? (
        <div class="cards">
          <section class="card" aria-labelledby="sys-health">
            <h2 id="sys-health">Health</h2>
            <table class="facts-table">
              <tbody>
                <tr>
                  <th scope="row">Version</th>
                  <td class="mono">{s.version ?? '—'}</td>
                </tr>
                <HealthRow label="Database" h={s.database} />
                <tr>
                  <th scope="row">Stored images</th>
                  <td>{formatBytes(s.storedBytes)}</td>
                </tr>
                <HealthRow label="Image storage" h={s.blobStore} />
                {s.disk ? (
                  <tr>
                    <th scope="row">Free disk</th>
                    <td class={diskLow ? 'text-danger' : undefined}>
                      {formatBytes(s.disk.freeBytes)}
                      {s.disk.totalBytes ? ` of ${formatBytes(s.disk.totalBytes)}` : ''} {s.disk.path ? <span class="sub mono">{s.disk.path}</span> : null}
                    </td>
                  </tr>
                ) : null}
              </tbody>
            </table>
          </section>
          {s.counts ? (
            <section class="card" aria-labelledby="sys-counts">
              <h2 id="sys-counts">Contents</h2>
              <table class="facts-table">
                <tbody>
                  {Object.entries(s.counts).map(([k, v]) => (
                    <tr key={k}>
                      <th scope="row">{k[0].toUpperCase() + k.slice(1)}</th>
                      <td class="num">{typeof v === 'number' ? v.toLocaleString() : String(v)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </section>
          ) : null}
        </div>
      ) : null}
      {s?.certificates && s.certificates.length > 0 ? (
        <section aria-labelledby="sys-certs">
          <h2 id="sys-certs">Certificates</h2>
          <TableWrap label="Certificates">
            <table class="data">
              <thead>
                <tr>
                  <th scope="col">Certificate</th>
                  <th scope="col">Expires</th>
                </tr>
              </thead>
              <tbody>
                {s.certificates.map((c) => (
                  <tr key={`${c.kind ?? ''}/${c.name}`}>
                    <td>
                      <span class="strong">{c.name}</span> {c.kind ? <span class="sub">{c.kind}</span> : null}
                    </td>
                    <td class={expiryClass(c.notAfter)}>
                      {formatDateTime(c.notAfter)} <span class="sub">{c.notAfter ? `(${relativeTime(c.notAfter)})` : ''}</span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        </section>
      ) : null}
    </Page>
  );
}

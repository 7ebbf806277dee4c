import { useEffect, useState } from 'preact/hooks';
import { readAudit, type AuditEvent, type AuditVerification } from '../admin-api';
import { Field, SelectField } from '../components/field';
import { Notice } from '../components/notice';
import { Page, TableWrap } from '../components/page';
import { formatDateTime } from '../format';
import { describeError } from '../messages';

const PAGE = 100;

interface Filters {
  from: string; // datetime-local value
  to: string;
  principal: string;
  action: string;
  study: string;
  outcome: string;
}

const noFilters: Filters = { from: '', to: '', principal: '', action: '', study: '', outcome: '' };

// The audit vocabulary of src/core (one for every door), the common ones first.
const ACTIONS = [
  'login',
  'password.change',
  'store',
  'query',
  'retrieve',
  'delete',
  'association',
  'token.refused',
  'security-alert',
  'admin.user.create',
  'admin.user.update',
  'admin.user.unlock',
  'admin.user.role-grant',
  'admin.user.role-revoke',
  'admin.device.create',
  'admin.device.certificate-issue',
  'admin.device.certificate-revoke',
  'admin.device.passcode-set',
  'admin.department.create',
  'admin.department.update',
  'admin.audit.read',
];

const localToIso = (v: string): string | undefined => {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
};

function detailsText(d: Record<string, unknown>): string {
  const parts = Object.entries(d)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  return parts.join(' · ');
}

function ChainStatus({ v }: { v: AuditVerification | undefined }) {
  if (!v) return null;
  if (v.ok) {
    return (
      <Notice kind="success">
        <strong>The audit trail is intact.</strong> All {v.count} entries are chained by their hashes and none has been changed or removed.
      </Notice>
    );
  }
  return (
    <Notice kind="error">
      <strong>The audit trail does not verify{v.brokenAt !== undefined ? ` at entry #${v.brokenAt}` : ''}.</strong> {v.reason ? `(${v.reason}) ` : ''}An entry was
      changed or removed outside Tresor. Do not change anything: keep a copy of the database and tell whoever is responsible for data protection.
    </Notice>
  );
}

export function AuditPage() {
  const [form, setForm] = useState<Filters>(noFilters);
  const [filters, setFilters] = useState<Filters>(noFilters);
  const [before, setBefore] = useState<number[]>([]); // a stack of page starts (ids), for "newer"
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [verification, setVerification] = useState<AuditVerification | undefined>();
  const [error, setError] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const cursor = before[before.length - 1];

  useEffect(() => {
    let live = true;
    setLoading(true);
    readAudit({
      from: localToIso(filters.from),
      to: localToIso(filters.to),
      principal: filters.principal.trim() || undefined,
      action: filters.action.trim() || undefined,
      study: filters.study.trim() || undefined,
      outcome: filters.outcome || undefined,
      limit: String(PAGE),
      before: cursor === undefined ? undefined : String(cursor),
      verify: 'true',
    }).then(
      (r) => {
        if (!live) return;
        setEvents(r.events);
        setVerification(r.verification);
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (!live) return;
        setError(describeError(e, 'The audit log'));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [filters, cursor]);

  const set = (k: keyof Filters) => (v: string) => setForm((f) => ({ ...f, [k]: v }));
  const submit = (e: Event) => {
    e.preventDefault();
    if (form.study.trim() && !/^[0-9.]+$/.test(form.study.trim())) {
      setFormError('A study UID is made of digits and dots, e.g. 1.2.840.113619.2.55…');
      return;
    }
    if (form.from && form.to && form.from > form.to) {
      setFormError('The "from" time is after the "to" time. Swap them or clear one.');
      return;
    }
    setFormError(null);
    setBefore([]);
    setFilters({ ...form });
  };

  return (
    <Page title="Audit log" intro="Who did what, and when: logins, studies stored, viewed, downloaded and deleted, and every administration change. Newest first.">
      <ChainStatus v={verification} />
      <form class="search-form" onSubmit={submit} noValidate role="search" aria-label="Filter the audit log">
        <div class="search-grid">
          <Field label="From" type="datetime-local" value={form.from} onValue={set('from')} />
          <Field label="To" type="datetime-local" value={form.to} onValue={set('to')} />
          <Field label="Actor" value={form.principal} onValue={set('principal')} hint="A user name or a device AE title." maxLength={64} />
          <div class="field">
            <label for="audit-action">
              Action <span class="optional">(optional)</span>
            </label>
            <input id="audit-action" list="audit-actions" value={form.action} onInput={(e) => set('action')((e.currentTarget as HTMLInputElement).value)} maxLength={64} spellcheck={false} />
            <datalist id="audit-actions">
              {ACTIONS.map((a) => (
                <option key={a} value={a} />
              ))}
            </datalist>
          </div>
          <Field label="Study UID" value={form.study} onValue={set('study')} maxLength={64} />
          <SelectField
            label="Outcome"
            value={form.outcome}
            onValue={set('outcome')}
            required={false}
            options={[
              { value: '', label: 'Any' },
              { value: 'success', label: 'Success' },
              { value: 'failure', label: 'Failure' },
              { value: 'denied', label: 'Denied' },
            ]}
          />
        </div>
        <Notice kind="error">{formError}</Notice>
        <div class="form-actions">
          <button type="submit" class="primary">
            Filter
          </button>
          <button
            type="button"
            onClick={() => {
              setForm(noFilters);
              setFilters(noFilters);
              setBefore([]);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <Notice kind="error">{error}</Notice>
      <div class="result-head" aria-live="polite">
        {loading ? 'Loading…' : events ? (events.length === 0 ? 'No entry matches these filters.' : `${events.length} entries${events.length === PAGE ? ' on this page' : ''}.`) : null}
      </div>
      {events && events.length > 0 ? (
        <TableWrap label="Audit entries">
          <table class="data audit">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Time</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Outcome</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr key={e.id}>
                  <td class="num sub">{e.id}</td>
                  <td class="nowrap">{formatDateTime(e.at)}</td>
                  <td>
                    <div class="strong">{e.principalName ?? (e.principalKind === 'anonymous' ? 'anonymous' : '—')}</div>
                    <div class="sub">
                      {e.principalKind}
                      {e.source ? ` · ${e.source}` : ''}
                    </div>
                  </td>
                  <td>
                    <div class="mono">{e.action}</div>
                    {e.dicomEvent ? <div class="sub">{e.dicomEvent.meaning}</div> : null}
                  </td>
                  <td>
                    <span class={`badge ${e.outcome === 'success' ? 'badge-on' : e.outcome === 'denied' ? 'badge-off' : 'badge-warn'}`}>{e.outcome}</span>
                  </td>
                  <td class="details">
                    {e.studyUids.length > 0 ? <div class="mono small">study {e.studyUids.join(', ')}</div> : null}
                    <div class="small">{detailsText(e.details)}</div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
      {events && (before.length > 0 || events.length === PAGE) ? (
        <nav class="pager" aria-label="Pages of the audit log">
          <button type="button" disabled={before.length === 0 || loading} onClick={() => setBefore((b) => b.slice(0, -1))}>
            ← Newer
          </button>
          <button type="button" disabled={events.length < PAGE || loading} onClick={() => setBefore((b) => [...b, events[events.length - 1].id])}>
            Older →
          </button>
        </nav>
      ) : null}
    </Page>
  );
}

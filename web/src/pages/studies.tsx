import { useEffect, useState } from 'preact/hooks';
import { Dialog } from '../components/dialog';
import { Field, SelectField } from '../components/field';
import { Notice } from '../components/notice';
import { Page, TableWrap } from '../components/page';
import { deleteStudy, emptySearch, PAGE_SIZE, searchStudies, viewerUrl, zipUrl, type StudyRow, type StudySearch } from '../dicom';
import { formatDicomDate, formatPersonName, plural } from '../format';
import { describeError } from '../messages';
import { mayDelete, useSession } from '../session';

// PS3.3 C.7.3.1.1.1 defined terms a clinic meets most often.
const MODALITIES: { value: string; label: string }[] = [
  { value: '', label: 'Any' },
  { value: 'CT', label: 'CT (computed tomography)' },
  { value: 'MR', label: 'MR (magnetic resonance)' },
  { value: 'CR', label: 'CR (computed radiography)' },
  { value: 'DX', label: 'DX (digital radiography)' },
  { value: 'US', label: 'US (ultrasound)' },
  { value: 'MG', label: 'MG (mammography)' },
  { value: 'XA', label: 'XA (angiography)' },
  { value: 'RF', label: 'RF (fluoroscopy)' },
  { value: 'NM', label: 'NM (nuclear medicine)' },
  { value: 'PT', label: 'PT (PET)' },
  { value: 'IO', label: 'IO (intra-oral)' },
  { value: 'PX', label: 'PX (panoramic X-ray)' },
  { value: 'OP', label: 'OP (ophthalmic photography)' },
  { value: 'ECG', label: 'ECG' },
  { value: 'SR', label: 'SR (structured report)' },
  { value: 'OT', label: 'OT (other)' },
];

interface Result {
  rows: StudyRow[];
  more: boolean;
  offset: number;
}

export function StudiesPage() {
  const { session } = useSession();
  const canDelete = mayDelete(session.user);
  const [form, setForm] = useState<StudySearch>(emptySearch);
  const [search, setSearch] = useState<StudySearch>(emptySearch);
  const [offset, setOffset] = useState(0);
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const [formError, setFormError] = useState<string | null>(null);
  const [toDelete, setToDelete] = useState<StudyRow | null>(null);
  const [status, setStatus] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    setLoading(true);
    searchStudies(search, offset).then(
      (r) => {
        if (!live) return;
        setResult({ ...r, offset });
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (!live) return;
        setError(describeError(e, 'The search'));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [search, offset, tick]);

  const set = (k: keyof StudySearch) => (v: string) => setForm((f) => ({ ...f, [k]: v }));

  const submit = (e: Event) => {
    e.preventDefault();
    if (form.from && form.to && form.from > form.to) {
      setFormError('The "from" date is after the "to" date. Swap them or clear one of them.');
      return;
    }
    setFormError(null);
    setStatus(null);
    setOffset(0);
    setSearch({ ...form });
    setTick((t) => t + 1);
  };

  const clear = () => {
    setForm(emptySearch);
    setFormError(null);
    setOffset(0);
    setSearch(emptySearch);
  };

  const filtered = Object.values(search).some(Boolean);
  const rows = result?.rows ?? [];

  return (
    <Page title="Studies" intro="The studies your account may see. Search by any of the fields; leave them empty to list everything.">
      <form class="search-form" onSubmit={submit} role="search" aria-label="Search studies" noValidate>
        <div class="search-grid">
          <Field label="Patient name" value={form.patientName} onValue={set('patientName')} hint='Any part of a name from its start, e.g. "smi"; for both: "Smith, John".' maxLength={64} />
          <Field label="Patient ID" value={form.patientId} onValue={set('patientId')} hint="Exact; * matches anything." maxLength={64} />
          <Field label="Study date from" type="date" value={form.from} onValue={set('from')} max={form.to || undefined} />
          <Field label="Study date to" type="date" value={form.to} onValue={set('to')} min={form.from || undefined} />
          <SelectField label="Modality" value={form.modality} onValue={set('modality')} options={MODALITIES} required={false} />
          <Field label="Accession number" value={form.accession} onValue={set('accession')} maxLength={16} />
        </div>
        <Notice kind="error">{formError}</Notice>
        <div class="form-actions">
          <button type="submit" class="primary">
            Search
          </button>
          <button type="button" onClick={clear}>
            Clear
          </button>
        </div>
      </form>

      <Notice kind="success">{status}</Notice>
      <Notice kind="error">{error}</Notice>

      <div class="result-head" aria-live="polite">
        {loading ? (
          <span>Searching…</span>
        ) : result ? (
          <span>
            {rows.length === 0
              ? filtered
                ? 'No study matches. Check the spelling, widen the dates, or clear some fields.'
                : 'There are no studies yet. Studies appear here once a modality sends them to Tresor.'
              : `Showing ${result.offset + 1}–${result.offset + rows.length}${result.more ? ' (more match: see the next page)' : ''}.`}
          </span>
        ) : null}
      </div>

      {rows.length > 0 ? (
        <TableWrap label="Studies found">
          <table class="data studies">
            <thead>
              <tr>
                <th scope="col">Date</th>
                <th scope="col">Patient</th>
                <th scope="col">Modalities</th>
                <th scope="col">Description</th>
                <th scope="col" class="num">
                  Series
                </th>
                <th scope="col" class="num">
                  Images
                </th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((s) => (
                <tr key={s.uid}>
                  <td class="nowrap">{formatDicomDate(s.date) || '—'}</td>
                  <td>
                    <div class="strong">{formatPersonName(s.patientName) || '(no name)'}</div>
                    <div class="sub">
                      ID {s.patientId || '—'}
                      {s.accession ? ` · Acc. ${s.accession}` : ''}
                    </div>
                  </td>
                  <td>{s.modalities.join(', ') || '—'}</td>
                  <td>{s.description || '—'}</td>
                  <td class="num">{s.series ?? '—'}</td>
                  <td class="num">{s.instances ?? '—'}</td>
                  <td class="row-actions">
                    <a class="button small" href={viewerUrl(s.uid)} target="_blank" rel="noopener" aria-label={`Open the study of ${formatDicomDate(s.date)} in the viewer (new tab)`}>
                      Open in viewer
                    </a>
                    <a class="button small" href={zipUrl(s.uid)} download aria-label={`Download the study of ${formatDicomDate(s.date)} as a ZIP file`}>
                      Download ZIP
                    </a>
                    {canDelete ? (
                      <button type="button" class="small danger" onClick={() => setToDelete(s)} aria-label={`Delete the study of ${formatDicomDate(s.date)}`}>
                        Delete
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}

      {result && (result.offset > 0 || result.more) ? (
        <nav class="pager" aria-label="Pages of results">
          <button type="button" disabled={result.offset === 0 || loading} onClick={() => setOffset(Math.max(0, result.offset - PAGE_SIZE))}>
            ← Previous page
          </button>
          <button type="button" disabled={!result.more || loading} onClick={() => setOffset(result.offset + PAGE_SIZE)}>
            Next page →
          </button>
        </nav>
      ) : null}

      {toDelete ? (
        <DeleteStudyDialog
          study={toDelete}
          onClose={() => setToDelete(null)}
          onDeleted={(s) => {
            setToDelete(null);
            setStatus(`The study of ${formatPersonName(s.patientName) || 'the patient'} from ${formatDicomDate(s.date) || 'an unknown date'} was deleted.`);
            setTick((t) => t + 1);
          }}
        />
      ) : null}
    </Page>
  );
}

function DeleteStudyDialog({ study, onClose, onDeleted }: { study: StudyRow; onClose(): void; onDeleted(s: StudyRow): void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await deleteStudy(study.uid);
      onDeleted(study);
    } catch (e) {
      setError(describeError(e, 'The study'));
      setBusy(false);
    }
  };
  return (
    <Dialog title="Delete this study?" onClose={onClose}>
      <p>
        This removes the study and all its images from Tresor for everyone. <strong>It cannot be undone.</strong> Download a ZIP first if you may need it.
      </p>
      <dl class="facts">
        <dt>Patient</dt>
        <dd>
          {formatPersonName(study.patientName) || '(no name)'} (ID {study.patientId || '—'})
        </dd>
        <dt>Study date</dt>
        <dd>{formatDicomDate(study.date) || '—'}</dd>
        <dt>Description</dt>
        <dd>{study.description || '—'}</dd>
        <dt>Modalities</dt>
        <dd>{study.modalities.join(', ') || '—'}</dd>
        <dt>Contents</dt>
        <dd>
          {study.series === null ? 'unknown number of series' : plural(study.series, 'series', 'series')}, {study.instances === null ? 'unknown number of images' : plural(study.instances, 'image')}
        </dd>
        {study.accession ? (
          <>
            <dt>Accession</dt>
            <dd>{study.accession}</dd>
          </>
        ) : null}
        <dt>Study UID</dt>
        <dd class="mono">{study.uid}</dd>
      </dl>
      <Notice kind="error">{error}</Notice>
      <div class="dialog-actions">
        <button type="button" onClick={onClose} autoFocus disabled={busy}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => void confirm()} disabled={busy}>
          {busy ? 'Deleting…' : 'Delete study'}
        </button>
      </div>
    </Dialog>
  );
}

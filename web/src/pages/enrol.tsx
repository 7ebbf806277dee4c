import { useState } from 'preact/hooks';
import { aeTitleProblem, createDevice, deviceBundle, listDepartments, portProblem, type BundleRequest } from '../admin-api';
import { ApiError } from '../api';
import { Field, SelectField } from '../components/field';
import { Notice } from '../components/notice';
import { Page } from '../components/page';
import { useLoad } from '../components/use-load';
import { saveResponse } from '../download';
import { describeError } from '../messages';
import { href } from '../router';
import type { Role } from '../session';
import { DEVICE_ROLES } from './devices';

/** HOST:PORT or [v6]:PORT, as `tresor edge` takes it. */
const ENDPOINT_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export function listenProblem(v: string): string | null {
  const m = ENDPOINT_RE.exec(v.trim());
  if (!m) return 'Enter where the edge listens as address:port, for example 0.0.0.0:11112 or 192.168.1.20:104.';
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return 'The port is a number from 1 to 65535.';
  return null;
}

export function parseAllow(v: string): string[] {
  return v
    .split(/[\s,;]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

const isLoopback = (listen: string) => /^(127\.|\[::1\]|localhost:)/.test(listen.trim());

interface Done {
  aeTitle: string;
  file: string;
  edge: boolean;
}

export function EnrolPage() {
  const departments = useLoad(listDepartments);
  const deptNames = (departments.data ?? []).filter((d) => !d.disabled).map((d) => d.name);
  const [ae, setAe] = useState('');
  const [department, setDepartment] = useState('');
  const [role, setRole] = useState<Role>('writer');
  const [host, setHost] = useState('');
  const [port, setPort] = useState('');
  const [days, setDays] = useState('');
  const [edge, setEdge] = useState(false);
  const [rsa, setRsa] = useState(false);
  const [listen, setListen] = useState('');
  const [allow, setAllow] = useState('');
  const [errors, setErrors] = useState<Record<string, string | null>>({});
  const [error, setError] = useState<string | null>(null);
  /** The device exists but its bundle failed: the retry only asks for the bundle. */
  const [created, setCreated] = useState<string | null>(null);
  const [done, setDone] = useState<Done | null>(null);
  const [busy, setBusy] = useState(false);
  const dept = department || deptNames[0] || '';

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    const allowList = parseAllow(allow);
    const problems: Record<string, string | null> = {
      ae: aeTitleProblem(ae),
      port: portProblem(host, port),
      days: days.trim() && !(/^\d{1,4}$/.test(days.trim()) && Number(days) >= 1 && Number(days) <= 3650) ? 'Enter a number of days from 1 to 3650, or leave it empty.' : null,
      listen: edge ? listenProblem(listen) : null,
      allow: edge && !isLoopback(listen) && allowList.length === 0 ? 'Enter the address of the device (or several, separated by commas), so that only it may connect to the edge.' : null,
    };
    setErrors(problems);
    if (Object.values(problems).some(Boolean)) return;
    if (!dept) return setError('There is no department to enrol the modality in. Add a department first (Administration → Departments).');
    const aeTitle = ae.trim();
    const body: BundleRequest = {
      ...(days.trim() ? { days: Number(days) } : {}),
      ...(rsa ? { keyType: 'rsa' as const } : {}),
      ...(edge ? { edge: { listen: listen.trim(), allow: allowList } } : {}),
    };
    setBusy(true);
    let exists = created === aeTitle;
    try {
      if (!exists) {
        await createDevice({ aeTitle, roles: [{ department: dept, role }], ...(host.trim() ? { host: host.trim(), port: Number(port) } : {}) });
        exists = true;
        setCreated(aeTitle);
      }
      const file = await saveResponse(await deviceBundle(aeTitle, body), `${aeTitle}-bundle.zip`);
      setDone({ aeTitle, file, edge });
      setCreated(null);
      setAe('');
      setHost('');
      setPort('');
      setListen('');
      setAllow('');
    } catch (err) {
      if (exists) {
        setError(`The device ${aeTitle} was created, but its bundle could not be made. ${describeError(err, 'The bundle')} Then press "Retry the bundle".`);
      } else if (err instanceof ApiError && err.status === 409) {
        setError(`A device with the AE title "${aeTitle}" already exists. Choose another AE title, or get a new bundle for the existing device on the Devices page ("New bundle").`);
      } else {
        setError(describeError(err, 'The device'));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <Page
      title="Enrol a modality"
      intro="Registers a modality (CT, MR, ultrasound…) with Tresor and downloads a ZIP with its certificate, its key and ready-made settings. Copy the ZIP to the modality’s computer or to the person who sets it up."
    >
      {done ? (
        <Notice kind="success">
          <p>
            <strong>{done.aeTitle}</strong> is enrolled and <strong>{done.file}</strong> was downloaded.
          </p>
          {done.edge ? (
            <p>
              Next: on the computer next to the modality, unpack the ZIP and run <code>tresor edge --config edge.json</code>. Point the modality at that computer’s
              address and port; the edge forwards to Tresor over TLS.
            </p>
          ) : (
            <p>
              Next: unpack the ZIP. To send images with dcmtk, run <code>./storescu.sh FILE…</code>; for Orthanc, merge <code>orthanc.json</code> into its
              configuration. The <code>.key</code> file is secret: keep it only on the device.
            </p>
          )}
          <p>
            The device appears on the <a href={href('/admin/devices')}>Devices</a> page.
          </p>
        </Notice>
      ) : null}
      <Notice kind="error">{error ?? (departments.error ? describeError(departments.error, 'The department list') : null)}</Notice>
      <form class="card enrol" onSubmit={submit} noValidate aria-label="Enrol a modality">
        <h2>The modality</h2>
        <div class="row">
          <Field
            label="AE title"
            value={ae}
            onValue={(v) => {
              setAe(v);
              if (created && v.trim() !== created) setCreated(null);
            }}
            required
            maxLength={16}
            error={errors.ae}
            hint="The name the modality uses in DICOM (its “AE title” or “station AE”), up to 16 characters."
          />
          <SelectField label="Department" value={dept} onValue={setDepartment} options={deptNames.map((d) => ({ value: d, label: d }))} hint="Its studies belong to this department." />
          <SelectField label="Role" value={role} onValue={(v) => setRole(v as Role)} options={DEVICE_ROLES} />
        </div>
        <h3>Tresor sends studies to it</h3>
        <p class="hint">Fill these in only if Tresor should send studies to this device on request (a C-MOVE destination, such as a workstation).</p>
        <div class="row">
          <Field label="Host" value={host} onValue={setHost} maxLength={253} />
          <Field label="Port" value={port} onValue={setPort} inputMode="numeric" maxLength={5} error={errors.port} />
          <Field label="Certificate valid for (days)" value={days} onValue={setDays} inputMode="numeric" maxLength={4} error={errors.days} hint="Empty: Tresor’s default." />
        </div>
        <div class="check">
          <input type="checkbox" id="enrol-rsa" checked={rsa} onChange={(e) => setRsa((e.currentTarget as HTMLInputElement).checked)} aria-describedby="enrol-rsa-hint" />
          <label for="enrol-rsa">The modality cannot use an ECDSA key: give it an RSA key</label>
        </div>
        <p class="hint" id="enrol-rsa-hint">
          Leave this off unless the modality refuses the key or its TLS connection fails: ECDSA keys are as strong and make every connection faster. Older devices may need RSA.
        </p>
        <div class="check">
          <input type="checkbox" id="enrol-edge" checked={edge} onChange={(e) => setEdge((e.currentTarget as HTMLInputElement).checked)} aria-describedby="enrol-edge-hint" />
          <label for="enrol-edge">The modality cannot use TLS: connect it through an edge</label>
        </div>
        <p class="hint" id="enrol-edge-hint">
          An edge is a small Tresor gateway on the same network as an old modality: the modality talks plain DICOM to the edge, the edge talks TLS to Tresor.
        </p>
        {edge ? (
          <div class="row">
            <Field label="Edge listens on" value={listen} onValue={setListen} required error={errors.listen} placeholder="0.0.0.0:11112" hint="Address and port on the edge computer that the modality sends to." />
            <Field
              label="Allowed modality addresses"
              value={allow}
              onValue={setAllow}
              required={!isLoopback(listen)}
              error={errors.allow}
              placeholder="192.168.1.50"
              hint="The modality’s IP address(es), separated by commas. Others are refused."
            />
          </div>
        ) : null}
        <button type="submit" class="primary" disabled={busy || deptNames.length === 0}>
          {busy ? 'Enrolling…' : created === ae.trim() && created ? 'Retry the bundle' : 'Enrol and download the bundle'}
        </button>
        {deptNames.length === 0 && departments.data ? (
          <p class="hint">
            There is no department yet: <a href={href('/admin/departments')}>add one first</a>.
          </p>
        ) : null}
      </form>
    </Page>
  );
}

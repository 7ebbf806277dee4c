import { useState } from 'preact/hooks';
import {
  aeTitleProblem,
  clearPasscode,
  createDevice,
  deviceBundle,
  listDepartments,
  listDevices,
  portProblem,
  revokeCertificate,
  setPasscode,
  updateDevice,
  type Device,
} from '../admin-api';
import { Dialog } from '../components/dialog';
import { Field, SelectField } from '../components/field';
import { Notice } from '../components/notice';
import { Page, TableWrap } from '../components/page';
import { useLoad } from '../components/use-load';
import { saveResponse } from '../download';
import { formatDateTime, relativeTime } from '../format';
import { describeError } from '../messages';
import { href } from '../router';
import type { Role } from '../session';

type Action = { kind: 'revoke' | 'passcode' | 'bundle'; device: Device } | null;

export const DEVICE_ROLES: { value: Role; label: string }[] = [
  { value: 'writer', label: 'writer — sends images to Tresor (most modalities)' },
  { value: 'reader', label: 'reader — queries and retrieves images (workstations, viewers)' },
];

function certificateCell(d: Device) {
  if (!d.certificate) return <span class="sub">none</span>;
  const until = d.certificate.notAfter;
  const expired = until ? new Date(until).getTime() < Date.now() : false;
  return (
    <span class={expired ? 'text-danger' : undefined}>
      {expired ? 'expired ' : 'until '}
      {formatDateTime(until)} <span class="sub">({relativeTime(until)})</span>
    </span>
  );
}

export function DevicesPage() {
  const devices = useLoad(listDevices);
  const departments = useLoad(listDepartments);
  const deptNames = (departments.data ?? []).filter((d) => !d.disabled).map((d) => d.name);
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [action, setAction] = useState<Action>(null);

  const toggle = async (d: Device) => {
    setStatus(null);
    setError(null);
    try {
      await updateDevice(d.aeTitle, { disabled: !d.disabled });
      setStatus(d.disabled ? `${d.aeTitle} is enabled again.` : `${d.aeTitle} is disabled: Tresor refuses its connections until it is enabled again.`);
      devices.reload();
    } catch (e) {
      setError(describeError(e, 'The device'));
    }
  };

  const done = (text: string) => {
    setAction(null);
    setError(null);
    setStatus(text);
    devices.reload();
  };

  const loadError = devices.error ?? departments.error;
  return (
    <Page
      title="Devices"
      intro={
        <>
          Modalities and workstations that talk DICOM to Tresor. Each one proves who it is with a certificate from Tresor. To add a modality and get its
          settings in one step, use <a href={href('/admin/enrol')}>Enrol a modality</a>.
        </>
      }
    >
      <Notice kind="success">{status}</Notice>
      <Notice kind="error">{error ?? (loadError ? describeError(loadError, 'The device list') : null)}</Notice>

      <AddDevice
        departments={deptNames}
        onAdded={(d) => {
          setError(null);
          setStatus(`${d.aeTitle} was added. Next: press "New bundle" in its row to get its certificate and settings.`);
          devices.reload();
        }}
      />

      {devices.data ? (
        devices.data.length === 0 ? (
          <p>No devices yet.</p>
        ) : (
          <TableWrap label="Devices">
            <table class="data">
              <thead>
                <tr>
                  <th scope="col">AE title</th>
                  <th scope="col">Roles</th>
                  <th scope="col">Tresor sends to</th>
                  <th scope="col">Certificate</th>
                  <th scope="col">Passcode</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {devices.data.map((d) => (
                  <tr key={d.aeTitle}>
                    <td class="strong mono">{d.aeTitle}</td>
                    <td>
                      {d.roles.map((r) => (
                        <span class="badge" key={`${r.department}/${r.role}`}>
                          {r.department}: {r.role}
                        </span>
                      ))}
                    </td>
                    <td class="mono">{d.host ? `${d.host}:${d.port ?? ''}` : <span class="sub">—</span>}</td>
                    <td>{certificateCell(d)}</td>
                    <td>{d.hasPasscode ? 'set' : <span class="sub">none</span>}</td>
                    <td>{d.disabled ? <span class="badge badge-off">disabled</span> : <span class="badge badge-on">active</span>}</td>
                    <td class="row-actions">
                      <button type="button" class="small" onClick={() => setAction({ kind: 'bundle', device: d })} aria-label={`New certificate bundle for ${d.aeTitle}`}>
                        New bundle
                      </button>
                      {d.certificate ? (
                        <button type="button" class="small danger-outline" onClick={() => setAction({ kind: 'revoke', device: d })} aria-label={`Revoke the certificate of ${d.aeTitle}`}>
                          Revoke certificate
                        </button>
                      ) : null}
                      <button type="button" class="small" onClick={() => setAction({ kind: 'passcode', device: d })} aria-label={`Passcode of ${d.aeTitle}`}>
                        Passcode
                      </button>
                      <button type="button" class="small" onClick={() => void toggle(d)} aria-label={`${d.disabled ? 'Enable' : 'Disable'} ${d.aeTitle}`}>
                        {d.disabled ? 'Enable' : 'Disable'}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )
      ) : devices.loading ? (
        <p>Loading…</p>
      ) : null}

      {action?.kind === 'revoke' ? <RevokeDialog device={action.device} onClose={() => setAction(null)} onDone={done} /> : null}
      {action?.kind === 'passcode' ? <PasscodeDialog device={action.device} onClose={() => setAction(null)} onDone={done} /> : null}
      {action?.kind === 'bundle' ? <BundleDialog device={action.device} onClose={() => setAction(null)} onDone={done} /> : null}
    </Page>
  );
}

function AddDevice({ departments, onAdded }: { departments: string[]; onAdded(d: Device): void }) {
  const [ae, setAe] = useState('');
  const [department, setDepartment] = useState('');
  const [role, setRole] = useState<Role>('writer');
  const [host, setHost] = useState('');
  const [port, setPort] = useState('');
  const [errors, setErrors] = useState<{ ae?: string | null; port?: string | null }>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const dept = department || departments[0] || '';

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const problems = { ae: aeTitleProblem(ae), port: portProblem(host, port) };
    setErrors(problems);
    if (problems.ae || problems.port) return;
    if (!dept) return setError('There is no department to put the device in. Add a department first (Administration → Departments).');
    setBusy(true);
    try {
      const d = await createDevice({ aeTitle: ae.trim(), roles: [{ department: dept, role }], ...(host.trim() ? { host: host.trim(), port: Number(port) } : {}) });
      setAe('');
      setHost('');
      setPort('');
      setErrors({});
      onAdded(d);
    } catch (err) {
      setError(describeError(err, 'The device'));
    } finally {
      setBusy(false);
    }
  };

  return (
    <details class="card">
      <summary>
        <h2>Add a device</h2>
      </summary>
      <form onSubmit={submit} noValidate aria-label="Add a device">
        <Notice kind="error">{error}</Notice>
        <div class="row">
          <Field label="AE title" value={ae} onValue={setAe} required maxLength={16} error={errors.ae} hint="As set on the device (DICOM network settings)." />
          <SelectField label="Department" value={dept} onValue={setDepartment} options={departments.map((d) => ({ value: d, label: d }))} />
          <SelectField label="Role" value={role} onValue={(v) => setRole(v as Role)} options={DEVICE_ROLES} />
        </div>
        <div class="row">
          <Field label="Host" value={host} onValue={setHost} maxLength={253} hint="Only if Tresor should send studies to it (C-MOVE)." />
          <Field label="Port" value={port} onValue={setPort} inputMode="numeric" maxLength={5} error={errors.port} />
        </div>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Adding…' : 'Add device'}
        </button>
      </form>
    </details>
  );
}

function RevokeDialog({ device, onClose, onDone }: { device: Device; onClose(): void; onDone(text: string): void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const confirm = async () => {
    setBusy(true);
    try {
      await revokeCertificate(device.aeTitle);
      onDone(`The certificate of ${device.aeTitle} is revoked: Tresor refuses it from now on, also on open connections. Press "New bundle" to give the device a new one.`);
    } catch (e) {
      setError(describeError(e, 'The device'));
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Revoke the certificate of ${device.aeTitle}?`} onClose={onClose}>
      <p>Do this when the device’s key may be in the wrong hands (a stolen or scrapped device). The device cannot connect until it gets a new bundle.</p>
      <Notice kind="error">{error}</Notice>
      <div class="dialog-actions">
        <button type="button" onClick={onClose} autoFocus disabled={busy}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => void confirm()} disabled={busy}>
          {busy ? 'Revoking…' : 'Revoke certificate'}
        </button>
      </div>
    </Dialog>
  );
}

function PasscodeDialog({ device, onClose, onDone }: { device: Device; onClose(): void; onDone(text: string): void }) {
  const [passcode, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const save = async (e: Event) => {
    e.preventDefault();
    if ([...passcode].length < 12) return setError('A passcode is at least 12 characters.');
    setBusy(true);
    try {
      await setPasscode(device.aeTitle, passcode);
      onDone(`The passcode of ${device.aeTitle} is set. Enter the same passcode on the device (DICOM user identity).`);
    } catch (err) {
      setError(describeError(err, 'The passcode'));
      setBusy(false);
    }
  };
  const clear = async () => {
    setBusy(true);
    try {
      await clearPasscode(device.aeTitle);
      onDone(`The passcode of ${device.aeTitle} is removed.`);
    } catch (err) {
      setError(describeError(err, 'The passcode'));
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Passcode of ${device.aeTitle}`} onClose={onClose}>
      <p>
        A passcode is a second proof for devices that can send a DICOM user identity (a password) with each connection. {device.hasPasscode ? 'This device has one.' : 'This device has none.'}
      </p>
      <form onSubmit={save} noValidate>
        <Field label="New passcode" type="password" value={passcode} onValue={setValue} required autoComplete="new-password" hint="At least 12 characters." />
        <Notice kind="error">{error}</Notice>
        <div class="dialog-actions">
          <button type="button" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          {device.hasPasscode ? (
            <button type="button" class="danger-outline" onClick={() => void clear()} disabled={busy}>
              Remove passcode
            </button>
          ) : null}
          <button type="submit" class="primary" disabled={busy}>
            Set passcode
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function BundleDialog({ device, onClose, onDone }: { device: Device; onClose(): void; onDone(text: string): void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [rsa, setRsa] = useState(false);
  const go = async () => {
    setBusy(true);
    try {
      const name = await saveResponse(await deviceBundle(device.aeTitle, rsa ? { keyType: 'rsa' } : {}), `${device.aeTitle}-bundle.zip`);
      onDone(`${name} was downloaded for ${device.aeTitle}; its previous certificate no longer works. Install the new files on the device.`);
    } catch (e) {
      setError(describeError(e, 'The device'));
      setBusy(false);
    }
  };
  return (
    <Dialog title={`New bundle for ${device.aeTitle}?`} onClose={onClose}>
      <p>
        Tresor issues a new certificate and key and downloads them as a ZIP with ready-made settings. <strong>The device’s current certificate stops working</strong>, so
        install the new files on the device right away. The ZIP holds a private key: keep it safe and delete it once installed.
      </p>
      <div class="check">
        <input type="checkbox" id="bundle-rsa" checked={rsa} onChange={(e) => setRsa((e.currentTarget as HTMLInputElement).checked)} />
        <label for="bundle-rsa">The device cannot use an ECDSA key: give it an RSA key (older devices)</label>
      </div>
      <Notice kind="error">{error}</Notice>
      <div class="dialog-actions">
        <button type="button" onClick={onClose} autoFocus disabled={busy}>
          Cancel
        </button>
        <button type="button" class="primary" onClick={() => void go()} disabled={busy}>
          {busy ? 'Preparing…' : 'Download new bundle'}
        </button>
      </div>
    </Dialog>
  );
}

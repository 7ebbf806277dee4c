import { useState } from 'preact/hooks';
import { createDepartment, departmentProblem, listDepartments, setDepartmentDisabled, type Department } from '../admin-api';
import { Field } from '../components/field';
import { Notice } from '../components/notice';
import { Page, TableWrap } from '../components/page';
import { useLoad } from '../components/use-load';
import { formatDateTime } from '../format';
import { describeError } from '../messages';
import { useSession } from '../session';

export function DepartmentsPage() {
  const { session } = useSession();
  const system = session.user.globalAdmin;
  const list = useLoad(listDepartments);
  const [name, setName] = useState('');
  const [nameError, setNameError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const add = async (e: Event) => {
    e.preventDefault();
    setStatus(null);
    setError(null);
    const problem = departmentProblem(name);
    setNameError(problem);
    if (problem) return;
    setBusy(true);
    try {
      const d = await createDepartment(name.trim());
      setName('');
      setStatus(`Department "${d.name}" was added. Next: add its users and enrol its modalities.`);
      list.reload();
    } catch (err) {
      setError(describeError(err, 'The department'));
    } finally {
      setBusy(false);
    }
  };

  const toggle = async (d: Department) => {
    setStatus(null);
    setError(null);
    try {
      await setDepartmentDisabled(d.name, !d.disabled);
      setStatus(
        d.disabled
          ? `Department "${d.name}" is enabled again.`
          : `Department "${d.name}" is disabled: its studies stay stored, but its users' and devices' roles there give no access until it is enabled again.`,
      );
      list.reload();
    } catch (err) {
      setError(describeError(err, 'The department'));
    }
  };

  return (
    <Page title="Departments" intro="Every study, user role and device belongs to a department. People see only the studies of their departments.">
      <Notice kind="success">{status}</Notice>
      <Notice kind="error">{error ?? (list.error ? describeError(list.error, 'The department list') : null)}</Notice>
      {system ? (
        <form class="inline-form card" onSubmit={add} noValidate aria-label="Add a department">
          <h2>Add a department</h2>
          <div class="row">
            <Field label="Name" value={name} onValue={setName} required maxLength={64} error={nameError} hint="For example Radiology or Cardiology." />
            <button type="submit" class="primary" disabled={busy}>
              {busy ? 'Adding…' : 'Add department'}
            </button>
          </div>
        </form>
      ) : (
        <Notice kind="info">Only a global administrator adds or disables departments.</Notice>
      )}
      {list.loading && !list.data ? <p>Loading…</p> : null}
      {list.data ? (
        list.data.length === 0 ? (
          <p>There are no departments yet. Add the first one above.</p>
        ) : (
          <TableWrap label="Departments">
            <table class="data">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Status</th>
                  <th scope="col">Added</th>
                  {system ? (
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  ) : null}
                </tr>
              </thead>
              <tbody>
                {list.data.map((d) => (
                  <tr key={d.name}>
                    <td class="strong">{d.name}</td>
                    <td>{d.disabled ? <span class="badge badge-off">disabled</span> : <span class="badge badge-on">active</span>}</td>
                    <td>{formatDateTime(d.createdAt)}</td>
                    {system ? (
                      <td class="row-actions">
                        <button type="button" class="small" onClick={() => void toggle(d)} aria-label={`${d.disabled ? 'Enable' : 'Disable'} department ${d.name}`}>
                          {d.disabled ? 'Enable' : 'Disable'}
                        </button>
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )
      ) : null}
    </Page>
  );
}

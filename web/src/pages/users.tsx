import { useState } from 'preact/hooks';
import {
  createUser,
  grantUserRole,
  listDepartments,
  listUsers,
  randomPassword,
  revokeUserRole,
  unlockUser,
  updateUser,
  usernameProblem,
  type User,
} from '../admin-api';
import { Dialog } from '../components/dialog';
import { Field } from '../components/field';
import { Notice } from '../components/notice';
import { Page, TableWrap } from '../components/page';
import { RolesEditor, sameBinding } from '../components/roles-editor';
import { useLoad } from '../components/use-load';
import { formatDateTime } from '../format';
import { describeError } from '../messages';
import { useSession, type RoleBinding } from '../session';
import { passwordRules, RuleList } from './change-password';

type Action = { kind: 'reset' | 'roles'; user: User } | null;

export function UsersPage() {
  const { session } = useSession();
  const me = session.user;
  const users = useLoad(listUsers);
  const departments = useLoad(listDepartments);
  const deptNames = (departments.data ?? []).filter((d) => !d.disabled).map((d) => d.name);
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [action, setAction] = useState<Action>(null);

  const run = async (what: string, f: () => Promise<unknown>, done: string) => {
    setStatus(null);
    setError(null);
    try {
      await f();
      setStatus(done);
      users.reload();
    } catch (e) {
      setError(describeError(e, what));
    }
  };

  const loadError = users.error ?? departments.error;
  return (
    <Page title="Users" intro="People who log in to this console and the viewer. Each user sees the studies of the departments they have a role in.">
      <Notice kind="success">{status}</Notice>
      <Notice kind="error">{error ?? (loadError ? describeError(loadError, 'The user list') : null)}</Notice>

      <CreateUser
        departments={deptNames}
        allowAdmin={me.globalAdmin}
        onCreated={(u, password) => {
          setError(null);
          setStatus(`User "${u.username}" was created with the password ${password}. Give it to them in person; they can change it under "Change password".`);
          users.reload();
        }}
      />

      {users.data ? (
        <TableWrap label="Users">
          <table class="data">
            <thead>
              <tr>
                <th scope="col">User name</th>
                <th scope="col">Roles</th>
                <th scope="col">Status</th>
                <th scope="col">Added</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.map((u) => (
                <tr key={u.username}>
                  <td class="strong">{u.username}</td>
                  <td>
                    {u.globalAdmin ? <span class="badge badge-admin">global administrator</span> : null}
                    {u.roles.map((r) => (
                      <span class="badge" key={`${r.department}/${r.role}`}>
                        {r.department}: {r.role}
                      </span>
                    ))}
                    {!u.globalAdmin && u.roles.length === 0 ? <span class="sub">no roles</span> : null}
                  </td>
                  <td>
                    {u.disabled ? <span class="badge badge-off">disabled</span> : <span class="badge badge-on">active</span>}
                    {u.mustChangePassword ? <span class="badge badge-warn">must change password</span> : null}
                  </td>
                  <td class="nowrap">{formatDateTime(u.createdAt)}</td>
                  <td class="row-actions">
                    <button type="button" class="small" onClick={() => setAction({ kind: 'roles', user: u })} aria-label={`Edit the roles of ${u.username}`}>
                      Roles
                    </button>
                    <button type="button" class="small" onClick={() => setAction({ kind: 'reset', user: u })} aria-label={`Reset the password of ${u.username}`}>
                      Reset password
                    </button>
                    <button
                      type="button"
                      class="small"
                      onClick={() => void run('The user', () => unlockUser(u.username), `"${u.username}" is unlocked: they can log in again now.`)}
                      aria-label={`Unlock ${u.username} after failed logins`}
                    >
                      Unlock
                    </button>
                    {u.username !== me.username ? (
                      <button
                        type="button"
                        class={u.disabled ? 'small' : 'small danger-outline'}
                        onClick={() =>
                          void run(
                            'The user',
                            () => updateUser(u.username, { disabled: !u.disabled }),
                            u.disabled ? `"${u.username}" is enabled and can log in again.` : `"${u.username}" is disabled: their sessions have ended and they cannot log in.`,
                          )
                        }
                        aria-label={`${u.disabled ? 'Enable' : 'Disable'} ${u.username}`}
                      >
                        {u.disabled ? 'Enable' : 'Disable'}
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : users.loading ? (
        <p>Loading…</p>
      ) : null}

      {action?.kind === 'reset' ? (
        <ResetPasswordDialog
          user={action.user}
          onClose={() => setAction(null)}
          onDone={(password) => {
            setAction(null);
            setError(null);
            setStatus(`The password of "${action.user.username}" is now ${password}. Give it to them in person: they must choose their own when they next log in.`);
            users.reload();
          }}
        />
      ) : null}
      {action?.kind === 'roles' ? (
        <RolesDialog
          user={action.user}
          departments={deptNames}
          allowAdmin={me.globalAdmin}
          onClose={() => {
            setAction(null);
            users.reload();
          }}
        />
      ) : null}
    </Page>
  );
}

function CreateUser({ departments, allowAdmin, onCreated }: { departments: string[]; allowAdmin: boolean; onCreated(u: User, password: string): void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [roles, setRoles] = useState<RoleBinding[]>([]);
  const [globalAdmin, setGlobalAdmin] = useState(false);
  const [errors, setErrors] = useState<{ username?: string | null; password?: string | null }>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const rules = passwordRules(password, username);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const problems = {
      username: usernameProblem(username),
      password: rules.every((r) => r.ok) ? null : 'The password does not meet the rules yet (or press "Generate").',
    };
    setErrors(problems);
    if (problems.username || problems.password) return;
    if (roles.length === 0 && !globalAdmin) {
      setError('Give the user at least one role: choose a department and a role, then press "Add role".');
      return;
    }
    setBusy(true);
    try {
      const u = await createUser({ username: username.trim(), password, roles, ...(allowAdmin && globalAdmin ? { globalAdmin: true } : {}) });
      onCreated(u, password);
      setUsername('');
      setPassword('');
      setRoles([]);
      setGlobalAdmin(false);
      setErrors({});
    } catch (err) {
      setError(describeError(err, 'The new user'));
    } finally {
      setBusy(false);
    }
  };

  return (
    <details class="card">
      <summary>
        <h2>Add a user</h2>
      </summary>
      <form onSubmit={submit} noValidate aria-label="Add a user">
        <Notice kind="error">{error}</Notice>
        <div class="row">
          <Field label="User name" value={username} onValue={setUsername} required maxLength={64} error={errors.username} hint="Letters, digits, dots or dashes, e.g. j.smith." />
          <div class="field-with-button">
            <Field label="Password" value={password} onValue={setPassword} required error={errors.password} autoComplete="new-password" hint={<RuleList rules={rules} />} />
            <button type="button" class="small" onClick={() => setPassword(randomPassword())}>
              Generate
            </button>
          </div>
        </div>
        <RolesEditor departments={departments} value={roles} onValue={setRoles} allowAdmin={allowAdmin} />
        {allowAdmin ? (
          <div class="check">
            <input type="checkbox" id="new-user-global-admin" checked={globalAdmin} onChange={(e) => setGlobalAdmin((e.currentTarget as HTMLInputElement).checked)} />
            <label for="new-user-global-admin">Global administrator (may do everything, in every department)</label>
          </div>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create user'}
        </button>
      </form>
    </details>
  );
}

function ResetPasswordDialog({ user, onClose, onDone }: { user: User; onClose(): void; onDone(password: string): void }) {
  const [password, setPassword] = useState(randomPassword);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const rules = passwordRules(password, user.username);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!rules.every((r) => r.ok)) return setError('The password does not meet the rules yet.');
    setBusy(true);
    setError(null);
    try {
      await updateUser(user.username, { password });
      onDone(password);
    } catch (err) {
      setError(describeError(err, 'The user'));
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Reset the password of ${user.username}`} onClose={onClose}>
      <p>
        This ends all sessions of <strong>{user.username}</strong> and unlocks the account. The new password works once: at the next login they must choose
        their own.
      </p>
      <form onSubmit={submit} noValidate>
        <Field label="One-time password" value={password} onValue={setPassword} required hint={<RuleList rules={rules} />} autoComplete="new-password" />
        <Notice kind="error">{error}</Notice>
        <div class="dialog-actions">
          <button type="button" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Resetting…' : 'Reset password'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function RolesDialog({ user, departments, allowAdmin, onClose }: { user: User; departments: string[]; allowAdmin: boolean; onClose(): void }) {
  const [roles, setRoles] = useState<RoleBinding[]>(user.roles);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);

  const change = async (next: RoleBinding[]) => {
    setError(null);
    setStatus(null);
    const added = next.filter((n) => !roles.some((r) => sameBinding(r, n)));
    const removed = roles.filter((r) => !next.some((n) => sameBinding(r, n)));
    try {
      let current = roles;
      for (const r of added) {
        current = (await grantUserRole(user.username, r)).roles;
        setStatus(`Added: ${r.department}: ${r.role}.`);
      }
      for (const r of removed) {
        await revokeUserRole(user.username, r);
        current = current.filter((c) => !sameBinding(c, r));
        setStatus(`Removed: ${r.department}: ${r.role}.`);
      }
      setRoles(current);
    } catch (e) {
      setError(describeError(e, 'The role'));
    }
  };

  return (
    <Dialog title={`Roles of ${user.username}`} onClose={onClose}>
      <p>Changes take effect at once, also for sessions that are open now.</p>
      <RolesEditor departments={departments} value={roles} onValue={(v) => void change(v)} allowAdmin={allowAdmin} legend="Current roles" />
      <Notice kind="success">{status}</Notice>
      <Notice kind="error">{error}</Notice>
      <div class="dialog-actions">
        <button type="button" class="primary" onClick={onClose}>
          Done
        </button>
      </div>
    </Dialog>
  );
}

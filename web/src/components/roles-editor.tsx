import { useId, useState } from 'preact/hooks';
import { ROLE_TEXT } from '../admin-api';
import type { Role, RoleBinding } from '../session';

export const sameBinding = (a: RoleBinding, b: RoleBinding): boolean => a.department === b.department && a.role === b.role;

/**
 * Picks department roles for a new account: a list of (department, role) with Remove
 * buttons and one row to add another. Only a global admin is offered the admin role
 * (the server refuses it to anyone else anyway).
 */
export function RolesEditor({
  departments,
  value,
  onValue,
  allowAdmin,
  roles = ['reader', 'writer', 'admin'],
  legend = 'Roles',
}: {
  departments: string[];
  value: RoleBinding[];
  onValue(v: RoleBinding[]): void;
  allowAdmin: boolean;
  roles?: Role[];
  legend?: string;
}) {
  const offered = roles.filter((r) => r !== 'admin' || allowAdmin);
  const id = useId();
  const [department, setDepartment] = useState('');
  const [role, setRole] = useState<Role>(offered[0] ?? 'reader');
  const dept = department || departments[0] || '';
  const add = () => {
    if (!dept) return;
    const b = { department: dept, role };
    if (!value.some((v) => sameBinding(v, b))) onValue([...value, b]);
  };
  return (
    <fieldset class="roles-editor">
      <legend>{legend}</legend>
      {value.length === 0 ? (
        <p class="hint">No role yet: add at least one below, or the account can do nothing.</p>
      ) : (
        <ul class="chips">
          {value.map((b) => (
            <li key={`${b.department}/${b.role}`} class="chip">
              <span>
                {b.department}: <strong>{b.role}</strong>
              </span>
              <button type="button" class="chip-remove" onClick={() => onValue(value.filter((v) => !sameBinding(v, b)))} aria-label={`Remove ${b.role} in ${b.department}`}>
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      {departments.length === 0 ? (
        <p class="hint">There is no department to choose from. Add a department first (Administration → Departments).</p>
      ) : (
        <div class="row">
          <div class="field">
            <label for={`${id}-d`}>Department</label>
            <select id={`${id}-d`} value={dept} onChange={(e) => setDepartment((e.currentTarget as HTMLSelectElement).value)}>
              {departments.map((d) => (
                <option key={d} value={d}>
                  {d}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for={`${id}-r`}>Role</label>
            <select id={`${id}-r`} value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value as Role)}>
              {offered.map((r) => (
                <option key={r} value={r}>
                  {ROLE_TEXT[r]}
                </option>
              ))}
            </select>
          </div>
          <button type="button" onClick={add}>
            Add role
          </button>
        </div>
      )}
    </fieldset>
  );
}

import { useState } from 'preact/hooks';
import { ApiError } from '../api';
import { Field } from '../components/field';
import { Notice } from '../components/notice';
import { Page } from '../components/page';
import { describeError, lockedMessage } from '../messages';
import { navigate } from '../router';
import { changePassword, currentSession, logIn, useSession } from '../session';

export const PASSWORD_MIN = 12;

export interface RuleCheck {
  text: string;
  ok: boolean;
}

/** The rules of src/core/identity/passwords.ts, shown while typing; the server checks them again. */
export function passwordRules(password: string, username: string): RuleCheck[] {
  const length = [...password].length;
  const name = username.trim().toLowerCase();
  return [
    { text: `At least ${PASSWORD_MIN} characters (${length} so far)`, ok: length >= PASSWORD_MIN && password.length <= 256 },
    { text: 'Does not contain the user name', ok: password.length > 0 && !(name.length >= 3 && password.toLowerCase().includes(name)) },
    { text: 'Not one character repeated', ok: password.length > 0 && !/^(.)\1*$/su.test(password) },
  ];
}

export function RuleList({ rules, id }: { rules: RuleCheck[]; id?: string }) {
  return (
    <ul class="rules" id={id}>
      {rules.map((r) => (
        <li key={r.text} class={r.ok ? 'rule-ok' : 'rule-todo'}>
          <span aria-hidden="true">{r.ok ? '✓' : '•'}</span> {r.text}
          <span class="visually-hidden">{r.ok ? ' (met)' : ' (not met yet)'}</span>
        </li>
      ))}
    </ul>
  );
}

export function ChangePasswordPage({ forced }: { forced?: boolean }) {
  const { session, replace } = useSession();
  const username = session.user.username;
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const rules = passwordRules(next, username);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (!current) return setError('Enter your current password (the one you logged in with).');
    if (!rules.every((r) => r.ok)) return setError('The new password does not meet the rules below yet. Change it until every rule shows a check mark.');
    if (next === current) return setError('The new password must be different from the current one.');
    if (next !== again) return setError('The two new passwords are not the same. Type the new password again in both fields.');
    setBusy(true);
    try {
      // Changing the password ends every earlier session of the account; the server
      // answers this browser's new session (else: log in again with the new password).
      const s = (await changePassword(current, next)) ?? (await currentSession()) ?? (await logIn(username, next));
      setCurrent('');
      setNext('');
      setAgain('');
      setDone(true);
      replace(s);
      if (forced) navigate('/studies');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && err.code === 'locked') setError(lockedMessage(err.retryAfterSeconds));
      else if (err instanceof ApiError && err.status === 401 && err.code === 'bad-credentials') setError('The current password is not right. Type the password you logged in with.');
      else setError(describeError(err, 'The new password'));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Page
      title={forced ? 'Choose your own password' : 'Change your password'}
      intro={
        forced
          ? 'You logged in with a password someone else set. Before you continue, choose a new password that only you know.'
          : 'Your other sessions end when the password changes.'
      }
    >
      <div class="narrow">
        {done && !forced ? <Notice kind="success">Your password has been changed.</Notice> : null}
        <Notice kind="error">{error}</Notice>
        <form onSubmit={submit} noValidate>
          <input type="text" name="username" autoComplete="username" value={username} hidden readOnly />
          <Field label="Current password" type="password" value={current} onValue={setCurrent} autoComplete="current-password" required name="current-password" />
          <Field label="New password" type="password" value={next} onValue={setNext} autoComplete="new-password" required name="new-password" hint={<RuleList rules={rules} />} />
          <Field
            label="New password again"
            type="password"
            value={again}
            onValue={setAgain}
            autoComplete="new-password"
            required
            name="new-password-again"
            error={again && next !== again ? 'Not the same as the new password yet.' : null}
          />
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Saving…' : 'Change password'}
          </button>
        </form>
      </div>
    </Page>
  );
}

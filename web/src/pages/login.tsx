import { useState } from 'preact/hooks';
import { ApiError } from '../api';
import { Field } from '../components/field';
import { Notice } from '../components/notice';
import { describeError, lockedMessage } from '../messages';
import { logIn, type LoginReason, type Session } from '../session';

const REASON_TEXT: Record<LoginReason, string | null> = {
  start: null,
  expired: 'Your session has ended: you were away longer than the time allowed, or logged out in another window. Log in again to continue.',
  'logged-out': 'You have logged out. Close the browser if this is a shared computer.',
  'password-changed': 'Your password has been changed. Log in with the new password.',
};

export function loginErrorText(e: unknown): string {
  if (e instanceof ApiError && e.status === 401) {
    if (e.code === 'locked') return lockedMessage(e.retryAfterSeconds);
    return 'The user name or password is not right. Check them (the password is case-sensitive) and try again. After several wrong tries the account is locked for a while.';
  }
  return describeError(e, 'The login');
}

export function LoginPage({ reason, onLoggedIn }: { reason: LoginReason; onLoggedIn(s: Session): void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!username.trim() || !password) {
      setError('Enter your user name and your password.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const s = await logIn(username.trim(), password);
      setPassword('');
      onLoggedIn(s);
    } catch (err) {
      setError(loginErrorText(err));
      setBusy(false);
    }
  };

  return (
    <main class="login" id="main">
      <div class="login-card">
        <h1>
          <span class="brand-mark" aria-hidden="true">
            T
          </span>{' '}
          Tresor
        </h1>
        <p class="login-sub">Log in to the image archive of your clinic.</p>
        {reason !== 'start' && !error ? <Notice kind={reason === 'expired' ? 'warning' : 'info'}>{REASON_TEXT[reason]}</Notice> : null}
        <Notice kind="error">{error}</Notice>
        <form onSubmit={submit} noValidate>
          <Field label="User name" value={username} onValue={setUsername} autoComplete="username" required autoFocus name="username" />
          <Field label="Password" type="password" value={password} onValue={setPassword} autoComplete="current-password" required name="password" />
          <button type="submit" class="primary wide" disabled={busy}>
            {busy ? 'Logging in…' : 'Log in'}
          </button>
        </form>
        <p class="hint">Forgot your password? Ask an administrator of your department to reset it.</p>
      </div>
    </main>
  );
}

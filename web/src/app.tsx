// The console shell: finds out whether this browser has a session (the HttpOnly cookie
// is the only state that survives a reload), shows the login page, the forced first
// password change, or the pages with their navigation. Which pages an account sees
// follows its roles; the server decides every request on its own.

import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { onActivity, onSessionLost } from './api';
import { Notice } from './components/notice';
import { describeError } from './messages';
import { AuditPage } from './pages/audit';
import { ChangePasswordPage } from './pages/change-password';
import { DepartmentsPage } from './pages/departments';
import { DevicesPage } from './pages/devices';
import { EdgesPage } from './pages/edges';
import { EnrolPage } from './pages/enrol';
import { LoginPage } from './pages/login';
import { StudiesPage } from './pages/studies';
import { SystemPage } from './pages/system';
import { UsersPage } from './pages/users';
import { href, navigate, useRoute } from './router';
import { currentSession, isAdmin, logOut, SessionContext, useSession, type LoginReason, type Session, type SessionContextValue, type SessionUser } from './session';

type State = { kind: 'loading' } | { kind: 'unreachable'; message: string } | { kind: 'anonymous'; reason: LoginReason } | { kind: 'in'; session: Session };

export function App() {
  const [state, setState] = useState<State>({ kind: 'loading' });

  const probe = useCallback(() => {
    setState({ kind: 'loading' });
    currentSession().then(
      (s) => setState(s ? { kind: 'in', session: s } : { kind: 'anonymous', reason: 'start' }),
      (e) => setState({ kind: 'unreachable', message: describeError(e) }),
    );
  }, []);

  const replace = useCallback((session: Session) => setState({ kind: 'in', session }), []);
  const loggedOut = useCallback((reason: LoginReason) => setState({ kind: 'anonymous', reason }), []);

  useEffect(probe, [probe]);
  useEffect(() => {
    onSessionLost(() => setState((st) => (st.kind === 'in' ? { kind: 'anonymous', reason: 'expired' } : st)));
    return () => onSessionLost(null);
  }, []);

  if (state.kind === 'loading') return <p class="loading-screen">Loading…</p>;
  if (state.kind === 'unreachable') {
    return (
      <main class="login">
        <h1>Tresor</h1>
        <Notice kind="error">{state.message}</Notice>
        <button type="button" onClick={probe}>
          Try again
        </button>
      </main>
    );
  }
  if (state.kind === 'anonymous') {
    return (
      <LoginPage
        reason={state.reason}
        onLoggedIn={(session) => {
          setState({ kind: 'in', session });
          if (!session.user.mustChangePassword) navigate(window.location.hash ? window.location.hash.slice(1) : '/studies');
        }}
      />
    );
  }
  return (
    <SignedIn session={state.session} onReplace={replace} onLoggedOut={loggedOut} />
  );
}

function SignedIn({ session, onReplace, onLoggedOut }: { session: Session; onReplace(s: Session): void; onLoggedOut(r: LoginReason): void }) {
  const ctx = useMemo<SessionContextValue>(
    () => ({
      session,
      replace: onReplace,
      logOut: async () => {
        try {
          await logOut();
        } finally {
          onLoggedOut('logged-out');
        }
      },
    }),
    [session, onReplace, onLoggedOut],
  );
  useSessionTimer(session, onReplace, () => onLoggedOut('expired'));

  return (
    <SessionContext.Provider value={ctx}>
      {session.user.mustChangePassword ? (
        <ForcedChange />
      ) : (
        <Shell user={session.user} />
      )}
    </SessionContext.Provider>
  );
}

/**
 * The server ends a session after idleTimeoutSeconds without requests, or at expiresAt.
 * The console does not keep a session alive by itself: once that long has passed since
 * its own last request, it asks the server whether the session still stands (the viewer
 * in another tab may have kept it) and goes to the login page if not.
 */
function useSessionTimer(session: Session, onReplace: (s: Session) => void, onExpired: () => void) {
  const callbacks = useRef({ onReplace, onExpired });
  callbacks.current = { onReplace, onExpired };
  useEffect(() => {
    const { onReplace, onExpired } = {
      onReplace: (s: Session) => callbacks.current.onReplace(s),
      onExpired: () => callbacks.current.onExpired(),
    };
    let timer = 0;
    let last = Date.now();
    const arm = () => {
      window.clearTimeout(timer);
      const idleAt = last + (session.idleTimeoutSeconds + 5) * 1000;
      const absoluteAt = new Date(session.expiresAt).getTime() + 1000;
      const at = Number.isFinite(absoluteAt) ? Math.min(idleAt, absoluteAt) : idleAt;
      // setTimeout holds 32-bit milliseconds; re-arm for long waits.
      timer = window.setTimeout(check, Math.min(Math.max(at - Date.now(), 1000), 2 ** 31 - 1));
    };
    const check = () => {
      currentSession().then(
        (s) => {
          if (!s) return onExpired();
          last = Date.now();
          if (s.expiresAt !== session.expiresAt || s.csrfToken !== session.csrfToken) onReplace(s);
          else arm();
        },
        () => {
          // Unreachable for a moment: look again later rather than logging out.
          last = Date.now();
          arm();
        },
      );
    };
    const off = onActivity(() => {
      last = Date.now();
      arm();
    });
    arm();
    return () => {
      off();
      window.clearTimeout(timer);
    };
  }, [session]);
}

function ForcedChange() {
  const { session, logOut: out } = useSession();
  return (
    <div class="app">
      <header class="topbar">
        <span class="brand">Tresor</span>
        <div class="account">
          <span>{session.user.username}</span>
          <button type="button" class="link-button" onClick={() => void out()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" class="content">
        <ChangePasswordPage forced />
      </main>
    </div>
  );
}

interface NavItem {
  route: string;
  label: string;
  show(u: SessionUser): boolean;
}

const everyone = () => true;
const admins = (u: SessionUser) => isAdmin(u);
const globalAdmins = (u: SessionUser) => u.globalAdmin;

const NAV: { group?: string; items: NavItem[] }[] = [
  { items: [{ route: '/studies', label: 'Studies', show: everyone }] },
  {
    group: 'Administration',
    items: [
      { route: '/admin/enrol', label: 'Enrol a modality', show: admins },
      { route: '/admin/devices', label: 'Devices', show: admins },
      { route: '/admin/users', label: 'Users', show: admins },
      { route: '/admin/departments', label: 'Departments', show: admins },
      { route: '/admin/edges', label: 'Edges', show: globalAdmins },
    ],
  },
  {
    items: [
      { route: '/audit', label: 'Audit log', show: globalAdmins },
      { route: '/system', label: 'System', show: globalAdmins },
    ],
  },
];

function pageFor(route: string, user: SessionUser) {
  const path = route.split('?')[0];
  const allowed = NAV.flatMap((g) => g.items).find((i) => i.route === path);
  if (allowed && !allowed.show(user)) {
    return <Notice kind="info">This page is for administrators. If you need it, ask an administrator of your department.</Notice>;
  }
  switch (path) {
    case '/studies':
      return <StudiesPage />;
    case '/admin/enrol':
      return <EnrolPage />;
    case '/admin/devices':
      return <DevicesPage />;
    case '/admin/users':
      return <UsersPage />;
    case '/admin/departments':
      return <DepartmentsPage />;
    case '/admin/edges':
      return <EdgesPage />;
    case '/audit':
      return <AuditPage />;
    case '/system':
      return <SystemPage />;
    case '/password':
      return <ChangePasswordPage />;
    default:
      return (
        <Notice kind="info">
          There is no such page. Go to <a href={href('/studies')}>the study list</a>.
        </Notice>
      );
  }
}

function Shell({ user }: { user: SessionUser }) {
  const route = useRoute();
  const { logOut: out } = useSession();
  const path = route.split('?')[0];
  return (
    <div class="app">
      <a class="skip-link" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to the page
      </a>
      <header class="topbar">
        <a class="brand" href={href('/studies')}>
          Tresor
        </a>
        <nav aria-label="Main">
          <ul class="nav">
            {NAV.map((g, gi) => {
              const items = g.items.filter((i) => i.show(user));
              if (items.length === 0) return null;
              return (
                <li key={gi} class={g.group ? 'nav-group' : 'nav-plain'}>
                  {g.group ? <span class="nav-group-label">{g.group}</span> : null}
                  <ul>
                    {items.map((i) => (
                      <li key={i.route}>
                        <a href={href(i.route)} aria-current={path === i.route ? 'page' : undefined}>
                          {i.label}
                        </a>
                      </li>
                    ))}
                  </ul>
                </li>
              );
            })}
          </ul>
        </nav>
        <div class="account">
          <span class="who" title={user.globalAdmin ? 'global administrator' : undefined}>
            {user.username}
          </span>
          <a href={href('/password')} aria-current={path === '/password' ? 'page' : undefined}>
            Change password
          </a>
          <button type="button" class="link-button" onClick={() => void out()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" class="content" tabIndex={-1}>
        {pageFor(route, user)}
      </main>
    </div>
  );
}

// Hash routes (#/studies, #/admin/users …): the server serves the same index.html for
// every page and no console path can ever collide with an API path (/admin/… is the API).
// Search terms (patient names) stay in page state, never in the URL or the history.

import { useEffect, useState } from 'preact/hooks';

export const DEFAULT_ROUTE = '/studies';

const current = (): string => {
  const h = window.location.hash.replace(/^#/, '');
  return h.startsWith('/') ? h : DEFAULT_ROUTE;
};

export function useRoute(): string {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return route;
}

export function navigate(route: string): void {
  if (current() !== route || window.location.hash !== `#${route}`) window.location.hash = route;
}

export const href = (route: string): string => `#${route}`;

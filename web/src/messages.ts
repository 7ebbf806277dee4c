// Turns a failed request into a sentence a clinic administrator can act on: what
// happened and what to do next. The server's messages are written to be shown
// (src/core/errors.ts); where they are terse, a next step is added here.

import { ApiError } from './api';
import { formatClock, formatDuration } from './format';

const sentence = (s: string): string => {
  const t = s.trim();
  if (!t) return t;
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
};

/** When a locked account may try again, in words. */
export function lockedMessage(retryAfterSeconds: number | undefined, now = new Date()): string {
  if (retryAfterSeconds === undefined) {
    return 'This account is locked after too many failed attempts. Wait 15 minutes and try again, or ask an administrator to unlock it.';
  }
  const at = new Date(now.getTime() + retryAfterSeconds * 1000);
  return `This account is locked after too many failed attempts. Try again at ${formatClock(at)} (in ${formatDuration(retryAfterSeconds)}), or ask an administrator to unlock it.`;
}

export function describeError(e: unknown, what = 'This'): string {
  if (!(e instanceof ApiError)) return 'Something went wrong in the console. Reload the page and try again.';
  const server = sentence(e.message);
  switch (e.status) {
    case 0:
      return e.message;
    case 400:
      // Schema messages ("body/name must match pattern …") are for programmers; the forms
      // check the same rules first, so this is rare.
      if (e.code === 'invalid-request') return `${what} was refused as not valid. Check what you entered and try again.`;
      return `${server} Correct it and try again.`;
    case 401:
      if (e.code === 'locked') return lockedMessage(e.retryAfterSeconds);
      return 'Your session has ended. Log in again to continue.';
    case 403:
      return `${server || 'Your account is not allowed to do this.'} If you need it, ask a global administrator.`;
    case 404:
      return `${what} was not found: it may have been deleted, or your account cannot see it. Reload the page to see the current list.`;
    case 409:
      return `${server || 'It conflicts with something that already exists.'} Reload the page to see the current state, then try again.`;
    case 413:
      return `${server || 'The request is too large.'} Try a smaller one.`;
    case 429:
      return 'Too many requests from this computer in a short time. Wait a minute, then try again.';
    case 503:
      return `Tresor is temporarily unavailable${server ? ` (${server.replace(/\.$/, '')})` : ''}. Try again in a minute; if it continues, check the System page or ask whoever runs the Tresor server.`;
    default:
      if (e.status >= 500) {
        return 'Something went wrong on the Tresor server. Try again; if it happens again, ask whoever runs the Tresor server to look at its log.';
      }
      return `${server || `The request was refused (HTTP ${e.status}).`} Try again.`;
  }
}

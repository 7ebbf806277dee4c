// The ordered list of migrations. A static list (not a directory scan) so that the
// same code runs from src/ under vitest and from dist/ after `tsc`.
import * as m001 from './001-initial.js';
import * as m002 from './002-identity.js';
import * as m003 from './003-blob-journal.js';
import * as m004 from './004-browser-sessions.js';
import * as m005 from './005-node-keys.js';
import * as m006 from './006-read-aggregates.js';
import * as m007 from './007-server-ec.js';
import * as m008 from './008-account-change-notify.js';

export const migrations = [m001, m002, m003, m004, m005, m006, m007, m008];

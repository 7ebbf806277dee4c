// Opening a stored object for an HTTP answer. A blob missing behind its index row is the
// operator's problem, not the caller's: it is logged (UID only, no PHI) and answered as
// 503 `blob-missing` — never 404, which would say the object does not exist. Callers open
// the first object before answering, so that case is a clean 503, not a 200 cut short.

import type { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { isTresorError, unavailable } from '../core/errors.js';
import type { GetOptions } from '../core/ports/blob-store.js';
import type { Retrieval, StoredInstance } from '../core/retrieve.js';

export function openerOf(r: Pick<Retrieval, 'open'>, log: FastifyBaseLogger, opts?: GetOptions): (row: StoredInstance) => Promise<Readable> {
  return async (row) => {
    try {
      return await r.open(row, opts);
    } catch (e) {
      if (isTresorError(e) && e.kind === 'not-found') {
        log.error({ sopInstanceUid: row.sopInstanceUid }, 'stored object missing behind its index row');
        throw unavailable('blob-missing', 'A stored object is missing; the operator has been told.');
      }
      throw e;
    }
  };
}

// Statement timing at the database port (knex stays in db/): knex emits 'query' when
// a statement is sent and 'query-response' / 'query-error' when it ends, with the same
// __knexQueryUid. Only the duration and the outcome leave here: never SQL or bindings
// (they hold UIDs and, in QIDO matching, patient names).

import type { Db } from './knex.js';

/** Returns the function that stops observing (an injected database outlives these Deps). */
export function observeStatements(db: Db, onStatement: (seconds: number, ok: boolean) => void): () => void {
  const started = new Map<string, bigint>();
  const uid = (q: unknown) => (q as { __knexQueryUid?: string }).__knexQueryUid;
  const done = (q: unknown, ok: boolean) => {
    const id = uid(q);
    const t = id === undefined ? undefined : started.get(id);
    if (id === undefined || t === undefined) return;
    started.delete(id);
    onStatement(Number(process.hrtime.bigint() - t) / 1e9, ok);
  };
  const onQuery = (q: unknown) => {
    const id = uid(q);
    // Bounded: a statement whose end is never reported must not grow the map forever.
    if (id !== undefined && started.size < 10_000) started.set(id, process.hrtime.bigint());
  };
  const onResponse = (_r: unknown, q: unknown) => done(q, true);
  const onError = (_e: unknown, q: unknown) => done(q, false);
  db.on('query', onQuery);
  db.on('query-response', onResponse);
  db.on('query-error', onError);
  return () => {
    db.off('query', onQuery);
    db.off('query-response', onResponse);
    db.off('query-error', onError);
  };
}

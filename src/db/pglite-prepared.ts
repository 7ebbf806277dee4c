// Named statements on the embedded database (issue 13). PGlite's query() sends every
// statement unnamed: Parse, Describe, Bind, Describe, Execute, Sync, each a separate
// pass through the WASM backend, and PostgreSQL parses, analyses and plans the text
// again every time. For the statements every C-STORE and every association runs (the
// ones marked with prepared() in knex.ts: the ingest look-up and insert, the account
// read), planning alone measured 0.65–1 ms of the ingest insert's ~2 ms on PGlite.
// Here a statement with a name is parsed once per database (PS: PostgreSQL's extended
// query protocol, "Parse" with a statement name, §55.2.3), and each run is Bind,
// Describe, Execute, Sync on it; PostgreSQL then keeps a generic plan after its fifth
// run (plan_cache_mode auto). Values are serialized and rows parsed exactly as
// PGlite.query does (its serializers by parameter type, its parseResults), under the
// same two locks, so callers see the same results and the same errors.

import { parse as pgliteParse, protocol, type PGlite, type Results } from '@electric-sql/pglite';

const { serialize } = protocol;

/** What PGlite has, besides its typings: the locks query() takes, and its readiness check. */
interface PGliteInternals {
  _checkReady(): Promise<void>;
  _runExclusiveTransaction<T>(fn: () => Promise<T>): Promise<T>;
  _runExclusiveQuery<T>(fn: () => Promise<T>): Promise<T>;
}

interface Prepared {
  text: string;
  paramTypes: number[];
}

const preparedByDb = new WeakMap<PGlite, Map<string, Prepared>>();

/**
 * Runs `text` as the named statement `name`. A name already prepared with another text
 * (never done on purpose: a name stands for one text) runs unnamed, through query().
 */
export async function queryNamed(pg: PGlite, name: string, text: string, params: unknown[]): Promise<Results> {
  let statements = preparedByDb.get(pg);
  if (!statements) preparedByDb.set(pg, (statements = new Map()));
  const known = statements.get(name);
  if (known && known.text !== text) return pg.query(text, params);
  const db = pg as unknown as PGliteInternals;
  await db._checkReady();
  return db._runExclusiveTransaction(() =>
    db._runExclusiveQuery(async () => {
      const step = async (message: Uint8Array) => (await pg.execProtocol(message, { syncToFs: false })).messages;
      const messages = [];
      try {
        let st = statements.get(name);
        if (!st) {
          await step(serialize.parse({ name, text, types: [] }));
          try {
            st = { text, paramTypes: pgliteParse.parseDescribeStatementResults(await step(serialize.describe({ type: 'S', name }))) };
          } catch (e) {
            // Not kept: the next run parses it again, so the backend must not keep it either.
            await step(serialize.sync());
            await step(serialize.close({ type: 'S', name })).catch(() => undefined);
            throw e;
          }
          statements.set(name, st);
        }
        const values = params.map((v, i) => {
          if (v === null || v === undefined) return null;
          const s = pg.serializers[st.paramTypes[i]];
          return s ? s(v) : String(v);
        });
        messages.push(...(await step(serialize.bind({ statement: name, values }))));
        messages.push(...(await step(serialize.describe({ type: 'P' }))));
        messages.push(...(await step(serialize.execute({}))));
      } finally {
        // As query(): the Sync always goes, so that an error ends the implicit transaction.
        messages.push(...(await step(serialize.sync())));
      }
      await pg.syncToFs();
      return pgliteParse.parseResults(messages, pg.parsers)[0];
    }),
  );
}

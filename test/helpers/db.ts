// The databases a test file runs against: always an in-memory PGlite, and real
// PostgreSQL too when TEST_DATABASE_URL is set (as in CI). Each open() gives a fresh,
// migrated database — for PostgreSQL a new `tresor_test_<random>` database created
// through TEST_DATABASE_URL and dropped again by close(). Use:
//
//   describe.each(databasesUnderTest())('$name', (dbu) => {
//     let t: { db: Db; close(): Promise<void> };
//     beforeAll(async () => { t = await dbu.open(); });
//     afterAll(async () => { await t?.close(); });
//   });

import { randomBytes } from 'node:crypto';
import { migrate, openDb, type Db } from '../../src/db/knex.js';

export interface DatabaseUnderTest {
  name: string;
  open(): Promise<{ db: Db; close(): Promise<void> }>;
}

async function openMigrated(url?: string): Promise<Db> {
  const db = await openDb(url ? { url } : {});
  try {
    await migrate(db);
    return db;
  } catch (e) {
    await db.destroy();
    throw e;
  }
}

const pglite: DatabaseUnderTest = {
  name: 'pglite',
  async open() {
    const db = await openMigrated();
    return { db, close: () => db.destroy() };
  },
};

function postgres(adminUrl: string): DatabaseUnderTest {
  return {
    name: 'postgres',
    async open() {
      const name = `tresor_test_${randomBytes(6).toString('hex')}`;
      const admin = await openDb({ url: adminUrl });
      try {
        await admin.raw('CREATE DATABASE ??', [name]);
      } catch (e) {
        await admin.destroy();
        throw e;
      }
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      let db: Db;
      try {
        db = await openMigrated(url.toString());
      } catch (e) {
        await admin.raw('DROP DATABASE IF EXISTS ??', [name]).catch(() => undefined);
        await admin.destroy();
        throw e;
      }
      let closed = false;
      return {
        db,
        async close() {
          if (closed) return;
          closed = true;
          try {
            await db.destroy();
            // WITH (FORCE) (PostgreSQL 13+): a connection a failed test left open does not keep the database alive.
            await admin.raw('DROP DATABASE IF EXISTS ?? WITH (FORCE)', [name]);
          } finally {
            await admin.destroy();
          }
        },
      };
    },
  };
}

export function databasesUnderTest(): DatabaseUnderTest[] {
  const url = process.env.TEST_DATABASE_URL;
  return url ? [pglite, postgres(url)] : [pglite];
}

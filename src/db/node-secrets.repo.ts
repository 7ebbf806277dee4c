// The keys shared by every node on this database (migration 005): rows of node_secrets,
// private keys sealed by pki/sealed.ts before they get here. `exclusive` runs under one
// cluster-wide advisory lock in one transaction, so two nodes starting at once on an
// empty database create one CA, not two.

import type { Knex } from 'knex';
import type { Db } from './knex.js';

const SECRETS_LOCK = 0x7e50a0d2;

/** 'server-ec': the ECDSA server pair served beside the RSA one (migration 007). */
export type SecretPurpose = 'ca' | 'server' | 'server-ec' | 'token';

export interface SecretRecord {
  purpose: SecretPurpose;
  id: string;
  createdAt: Date;
  publicPem: string;
  sealedKey: string;
}

export interface NodeSecretsRepo {
  /** Every record of a purpose, oldest id first. */
  list(purpose: SecretPurpose): Promise<SecretRecord[]>;
  insert(rec: Omit<SecretRecord, 'createdAt'> & { createdAt?: Date }): Promise<void>;
  remove(purpose: SecretPurpose, id: string): Promise<void>;
  /** Runs `fn` holding the secrets lock, in one transaction (committed when fn returns). */
  exclusive<T>(fn: (repo: NodeSecretsRepo) => Promise<T>): Promise<T>;
}

const toRecord = (r: any): SecretRecord => ({
  purpose: r.purpose,
  id: r.id,
  createdAt: new Date(r.created_at),
  publicPem: r.public_pem,
  sealedKey: r.sealed_key,
});

export function createNodeSecretsRepo(db: Db | Knex.Transaction): NodeSecretsRepo {
  return {
    async list(purpose) {
      return (await db('node_secrets').where({ purpose }).orderBy('id')).map(toRecord);
    },
    async insert(rec) {
      await db('node_secrets').insert({
        purpose: rec.purpose,
        id: rec.id,
        created_at: rec.createdAt ?? new Date(),
        public_pem: rec.publicPem,
        sealed_key: rec.sealedKey,
      });
    },
    async remove(purpose, id) {
      await db('node_secrets').where({ purpose, id }).delete();
    },
    async exclusive(fn) {
      if (db.isTransaction) return fn(createNodeSecretsRepo(db));
      return (db as Db).transaction(async (trx) => {
        await trx.raw('SELECT pg_advisory_xact_lock(?)', [SECRETS_LOCK]);
        return fn(createNodeSecretsRepo(trx));
      });
    },
  };
}

// The token signing keys in the database (issue 11 item 2), behind the same
// TokenKeyStore port as the files of pki/token-key-store.ts: every node signs with the
// newest key and verifies with every key kept, so a token from one node works on all,
// and a rotation on one node reaches the others (core/identity/tokens.ts re-reads the
// store on an unknown kid and every minute). Private keys are sealed (pki/sealed.ts).

import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { TokenKeyRing, TokenKeyStore } from '../core/ports/token-key-store.js';
import type { NodeSecretsRepo } from '../db/node-secrets.repo.js';
import { seal, unseal } from './sealed.js';
import { generateEcKey, kidCreatedAt, newKid } from './token-key-store.js';

export function dbTokenKeyStore(repo: NodeSecretsRepo, sealKey: Buffer): TokenKeyStore {
  async function create(now: Date, r: NodeSecretsRepo = repo): Promise<string> {
    const kid = newKid(now);
    const privateKeyPem = await generateEcKey();
    const publicPem = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'pem' }) as string;
    await r.insert({ purpose: 'token', id: kid, createdAt: now, publicPem, sealedKey: seal(sealKey, 'token', kid, privateKeyPem) });
    return kid;
  }
  return {
    async load({ retainMs, now }) {
      let rows = await repo.list('token');
      if (rows.length === 0) {
        // First start of the first node: one key, even when several nodes start at once.
        rows = await repo.exclusive(async (r) => {
          if ((await r.list('token')).length === 0) await create(now, r);
          return r.list('token');
        });
      }
      const ring = new Map<string, string>();
      let signing: TokenKeyRing['signing'] | undefined;
      for (let i = 0; i < rows.length; i++) {
        const replacedAt = i + 1 < rows.length ? kidCreatedAt(rows[i + 1].id) : Infinity;
        if (now.getTime() - replacedAt > retainMs) {
          await repo.remove('token', rows[i].id); // every token it signed has expired
          continue;
        }
        ring.set(rows[i].id, rows[i].publicPem);
        if (i === rows.length - 1) signing = { kid: rows[i].id, privateKeyPem: unseal(sealKey, 'token', rows[i].id, rows[i].sealedKey) };
      }
      if (!signing) throw new Error('no token signing key in the database');
      return { signing, publicKeys: ring };
    },
    create: (now) => create(now),
  };
}

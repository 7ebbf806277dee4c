// The CA and the server certificate in the database (issue 11 item 2): every node on one
// PostgreSQL serves the same server certificate from the same CA, so devices and browsers
// trust one CA and a device enrolled on any node is accepted by all. Private keys are
// sealed under the master key (pki/sealed.ts). The first start of the first node creates
// them under the secrets lock (db/node-secrets.repo.ts), so nodes starting together
// create one CA. The server certificate's names are TRESOR_TLS_HOSTNAMES (shared by all
// nodes) plus loopback, never one machine's host name.

import { X509Certificate } from 'node:crypto';
import type { NodeSecretsRepo, SecretRecord } from '../db/node-secrets.repo.js';
import type { NodeSecretsRepo as Repo, SecretPurpose } from '../db/node-secrets.repo.js';
import { assertKeyMatches, createCa, createServerCertificate, serverPairUsable, validateHostname, type Pki, type ServerKeyType, type ServerPair } from './ca.js';
import { seal, unseal } from './sealed.js';

const CA_ID = 'ca';

const serverId = (certPem: string): string => {
  const c = new X509Certificate(certPem);
  // Sortable by issue time: the newest row is the one served.
  return `${new Date(c.validFrom).toISOString()}-${c.serialNumber.toLowerCase()}`;
};

/** The RSA server pair is purpose 'server', the ECDSA one (pki/ca.ts servedPairs) 'server-ec'. */
const PURPOSE: Record<ServerKeyType, SecretPurpose> = { rsa: 'server', ec: 'server-ec' };

function openPair(sealKey: Buffer, rec: SecretRecord | undefined): ServerPair | undefined {
  return rec ? { certPem: rec.publicPem, keyPem: unseal(sealKey, rec.purpose, rec.id, rec.sealedKey) } : undefined;
}

/** The newest pair of that key type. */
const newest = async (r: Repo, sealKey: Buffer, type: ServerKeyType) => openPair(sealKey, (await r.list(PURPOSE[type])).at(-1));

function open(sealKey: Buffer, ca: SecretRecord, server: ServerPair | undefined, serverEc: ServerPair | undefined): Pki | undefined {
  if (!server) return undefined;
  const caKeyPem = unseal(sealKey, 'ca', ca.id, ca.sealedKey);
  return { caCertPem: ca.publicPem, caKeyPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem, ...(serverEc ? { serverEc } : {}) };
}

/**
 * The shared PKI, creating what is missing. `renewServer` (`tresor tls renew`): a new
 * server pair from the same CA, which the other nodes pick up on their next refresh.
 */
export async function ensureDbPki(opts: {
  repo: NodeSecretsRepo;
  sealKey: Buffer;
  hostnames: readonly string[];
  renewServer?: boolean;
  /** A CA to adopt instead of creating one (an installation moving to the master key keeps the CA its devices trust). */
  existingCa?: () => Promise<{ caCertPem: string; caKeyPem: string } | undefined>;
}): Promise<Pki> {
  const hostnames = opts.hostnames.map(validateHostname);
  const usable = (p: ServerPair | undefined, caCertPem: string): p is ServerPair => p !== undefined && serverPairUsable(p.certPem, p.keyPem, caCertPem, hostnames);
  const current = async (r: NodeSecretsRepo): Promise<Pki | undefined> => {
    const ca = (await r.list('ca')).at(-1);
    if (!ca) return undefined;
    const rsa = await newest(r, opts.sealKey, 'rsa');
    const ec = await newest(r, opts.sealKey, 'ec');
    return usable(rsa, ca.publicPem) && usable(ec, ca.publicPem) ? open(opts.sealKey, ca, rsa, ec) : undefined;
  };
  if (!opts.renewServer) {
    const pki = await current(opts.repo);
    if (pki) return pki;
  }
  return opts.repo.exclusive(async (r) => {
    // Another node may have done it while we waited for the lock.
    if (!opts.renewServer) {
      const pki = await current(r);
      if (pki) return pki;
    }
    let ca = (await r.list('ca')).at(-1);
    if (!ca) {
      const created = (await opts.existingCa?.()) ?? (await createCa());
      assertKeyMatches(created.caCertPem, created.caKeyPem, 'ca');
      await r.insert({ purpose: 'ca', id: CA_ID, publicPem: created.caCertPem, sealedKey: seal(opts.sealKey, 'ca', CA_ID, created.caKeyPem) });
      ca = (await r.list('ca')).at(-1)!;
    }
    const caKeyPem = unseal(opts.sealKey, 'ca', ca.id, ca.sealedKey);
    assertKeyMatches(ca.publicPem, caKeyPem, 'ca');
    // Each pair kept when usable (unless renewing), else issued anew and the old one removed.
    const pair = async (type: ServerKeyType): Promise<ServerPair> => {
      const have = await newest(r, opts.sealKey, type);
      if (!opts.renewServer && usable(have, ca!.publicPem)) return have;
      const fresh = await createServerCertificate({ caCertPem: ca!.publicPem, caKeyPem }, hostnames, false, type);
      const purpose = PURPOSE[type];
      const id = serverId(fresh.certPem);
      for (const old of await r.list(purpose)) await r.remove(purpose, old.id);
      await r.insert({ purpose, id, publicPem: fresh.certPem, sealedKey: seal(opts.sealKey, purpose, id, fresh.keyPem) });
      return fresh;
    };
    const server = await pair('rsa');
    const serverEc = await pair('ec');
    return { caCertPem: ca.publicPem, caKeyPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem, serverEc };
  });
}

/** The shared PKI as it is now (no creation): for the periodic refresh on every node. */
export async function readDbPki(repo: NodeSecretsRepo, sealKey: Buffer): Promise<Pki | undefined> {
  const ca = (await repo.list('ca')).at(-1);
  return ca ? open(sealKey, ca, await newest(repo, sealKey, 'rsa'), await newest(repo, sealKey, 'ec')) : undefined;
}

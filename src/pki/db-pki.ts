// The CA and the server certificate in the database (issue 11 item 2): every node on one
// PostgreSQL serves the same server certificate from the same CA, so devices and browsers
// trust one CA and a device enrolled on any node is accepted by all. Private keys are
// sealed under the master key (pki/sealed.ts). The first start of the first node creates
// them under the secrets lock (db/node-secrets.repo.ts), so nodes starting together
// create one CA. The server certificate's names are TRESOR_TLS_HOSTNAMES (shared by all
// nodes) plus loopback, never one machine's host name.

import { X509Certificate } from 'node:crypto';
import type { NodeSecretsRepo, SecretRecord } from '../db/node-secrets.repo.js';
import { assertKeyMatches, createCa, createServerCertificate, serverPairUsable, validateHostname, type Pki } from './ca.js';
import { seal, unseal } from './sealed.js';

const CA_ID = 'ca';

const serverId = (certPem: string): string => {
  const c = new X509Certificate(certPem);
  // Sortable by issue time: the newest row is the one served.
  return `${new Date(c.validFrom).toISOString()}-${c.serialNumber.toLowerCase()}`;
};

function open(sealKey: Buffer, ca: SecretRecord, server: SecretRecord | undefined): Pki | undefined {
  if (!server) return undefined;
  const caKeyPem = unseal(sealKey, 'ca', ca.id, ca.sealedKey);
  const serverKeyPem = unseal(sealKey, 'server', server.id, server.sealedKey);
  return { caCertPem: ca.publicPem, caKeyPem, serverCertPem: server.publicPem, serverKeyPem };
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
  const current = async (r: NodeSecretsRepo): Promise<Pki | undefined> => {
    const ca = (await r.list('ca')).at(-1);
    if (!ca) return undefined;
    const pki = open(opts.sealKey, ca, (await r.list('server')).at(-1));
    return pki && serverPairUsable(pki.serverCertPem, pki.serverKeyPem, pki.caCertPem, hostnames) ? pki : undefined;
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
    const server = await createServerCertificate({ caCertPem: ca.publicPem, caKeyPem }, hostnames, false);
    const id = serverId(server.certPem);
    for (const old of await r.list('server')) await r.remove('server', old.id);
    await r.insert({ purpose: 'server', id, publicPem: server.certPem, sealedKey: seal(opts.sealKey, 'server', id, server.keyPem) });
    return { caCertPem: ca.publicPem, caKeyPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem };
  });
}

/** The shared PKI as it is now (no creation): for the periodic refresh on every node. */
export async function readDbPki(repo: NodeSecretsRepo, sealKey: Buffer): Promise<Pki | undefined> {
  const ca = (await repo.list('ca')).at(-1);
  return ca ? open(sealKey, ca, (await repo.list('server')).at(-1)) : undefined;
}

// Seconds until expiry of the certificates Tresor depends on, read at scrape time:
// the CA (devices and clients trust it), the server certificate (both doors present
// it) and the soonest-expiring device certificate (a modality whose certificate lapses
// cannot store any more). Device expiry dates come from the rows (cert_not_after), the
// list is cached for a minute so a scrape does not query the database every time.

import { X509Certificate } from 'node:crypto';

interface PemPair {
  caCertPem: string;
  serverCertPem: string;
  /** The ECDSA pair served beside the RSA one: the server figure is the earlier end of the two. */
  serverEc?: { certPem: string };
}

export function certificateExpirySource(
  pki: PemPair,
  devices: () => Promise<readonly { certNotAfter: string | null; disabled?: boolean }[]>,
  now: () => Date = () => new Date(),
): () => Promise<Partial<Record<'ca' | 'server' | 'device', number>>> {
  const ca = new Date(new X509Certificate(pki.caCertPem).validTo).getTime();
  const server = Math.min(...[pki.serverCertPem, ...(pki.serverEc ? [pki.serverEc.certPem] : [])].map((c) => new Date(new X509Certificate(c).validTo).getTime()));
  let cached: { at: number; soonest: number | undefined } | undefined;
  return async () => {
    const t = now().getTime();
    if (!cached || t - cached.at > 60_000) {
      const ends = (await devices()).filter((d) => d.certNotAfter && !d.disabled).map((d) => new Date(d.certNotAfter as string).getTime());
      cached = { at: t, soonest: ends.length ? Math.min(...ends) : undefined };
    }
    const s = (end: number) => Math.round((end - t) / 1000);
    return { ca: s(ca), server: s(server), ...(cached.soonest !== undefined ? { device: s(cached.soonest) } : {}) };
  };
}

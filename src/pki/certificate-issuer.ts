// Tresor's PKI as the core's CertificateIssuer port (core/ports/certificate-issuer.ts).

import type { CertificateIssuer } from '../core/ports/certificate-issuer.js';
import { canIssueDeviceCertificates, type Pki } from './ca.js';
import { issueDeviceCertificate, signDeviceCsr } from './device-cert.js';

export function pkiCertificateIssuer(pki: Pki): CertificateIssuer {
  return {
    caCertPem: pki.caCertPem,
    canIssue: canIssueDeviceCertificates(pki),
    issue: (req) => issueDeviceCertificate(pki, req),
    signCsr: (req) => signDeviceCsr(pki, req),
  };
}

// The port the core issues device client certificates through; src/pki/ implements it
// (pki/certificate-issuer.ts). The core decides who may have a certificate and records
// its fingerprint (ARCHITECTURE.md rule 2); what the certificate says is pki's business.

export interface DeviceCertificateRequest {
  /** The device's AE title: the certificate's subject CN (PS3.15 B.1 leaves the name to the site). */
  aeTitle: string;
  /** Validity in days; the issuer's default when absent. */
  days?: number;
  /** The device runs a storage SCP Tresor connects to (a C-MOVE destination): it needs serverAuth too. */
  storageScp: boolean;
  /** The key pair to generate (issue only): ECDSA P-256 (`ec`, the default) or RSA 3072 for older devices. */
  keyType?: 'ec' | 'rsa';
}

export interface IssuedCertificate {
  certificatePem: string;
  /** Lowercase hex SHA-256 of the certificate DER, no colons. */
  fingerprint256: string;
  /** PKCS#8 PEM, only when the issuer generated the key pair; shown once, never stored. */
  privateKeyPem?: string;
}

export interface CertificateIssuer {
  /** PEM of the CA that devices trust and their certificates are verified against. */
  readonly caCertPem: string;
  /** False when the CA private key is not configured: then no certificate can be issued. */
  readonly canIssue: boolean;
  /** Generates the device's key pair and certifies it. */
  issue(req: DeviceCertificateRequest): Promise<IssuedCertificate>;
  /** Certifies the public key of a device's CSR (the key never leaves the device). */
  signCsr(req: DeviceCertificateRequest & { csrPem: string }): Promise<IssuedCertificate>;
}

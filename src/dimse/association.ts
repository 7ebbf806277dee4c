// Association authentication (ARCHITECTURE.md rule 1): the TLS peer certificate,
// the calling AE title and the user-identity sub-item (PS3.7 §D.3.3.7) become a
// Principal, or the association is rejected. No authorization happens here.
//
// Policy:
//  - A certificate, when presented, must chain to Tresor's CA (OpenSSL verified it:
//    socket.authorized) and be bound to a device whose AE title is the calling AE.
//  - A user identity of type 2 (username + passcode) or 5 (JWT) is always checked,
//    whether or not the requestor asked for a positive response (the dcmjs-dimse
//    README example only checks when asked: a bypass).
//  - Every credential presented must be valid. Without a certificate the user
//    identity must succeed; with `requireBoth`, both are needed. Nothing is ever
//    accepted on an AE title alone (types 1, 3 and 4 prove nothing to us).
//  - With both a certificate and a user's credentials, the user is the principal
//    (its roles apply); a device passcode must belong to the certificate's device.
//  - Every authentication failure gets the same A-ASSOCIATE-RJ after the same delay.

import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { HeldCredential, RecheckResult } from '../core/identity/index.js';
import type { Principal } from '../core/principal.js';
import { APPLICATION_CONTEXT_NAME, RejectCode, type AssociateRq } from './protocol/pdu.js';

export interface DimseAuthenticator {
  /** null = unknown, revoked, or bound to another AE title than `callingAe`. */
  byCertificate(i: { fingerprint256: string; callingAe: string; source: string }): Promise<Principal | null>;
  /**
   * Type 2: username + passcode of a user, or a device's AE title + its passcode
   * (a device passcode must only succeed when `callingAe` is that device's AE title).
   * Type 5: a Tresor access token (JWT) of a user. Failures count toward lockout.
   */
  byUserIdentity(i: { type: 1 | 2 | 5; primary: string; secondary?: string; callingAe: string; source: string }): Promise<Principal | null>;
  /** A registered C-MOVE destination: host and port come from its record, never from the request. */
  moveDestination(aeTitle: string): Promise<MoveDestination | null>;
  /**
   * Whether the credentials an open association was accepted with still hold (account
   * enabled, rights not reduced, certificate still the bound one, password unchanged),
   * and the principal as it is now. Asked before every request (scp.ts).
   */
  recheck(held: HeldCredential): Promise<RecheckResult>;
}

export interface MoveDestination {
  principal: Principal;
  host: string;
  port: number;
  /** When known, the destination's TLS certificate must have this SHA-256 fingerprint (lowercase hex of the DER). */
  fingerprint256?: string;
}

export interface Rejection {
  result: number;
  source: number;
  reason: number;
}

/** The one rejection for every authentication failure: no oracle of which part was wrong. */
export const AUTH_REJECTION: Rejection = {
  result: RejectCode.ResultPermanent,
  source: RejectCode.SourceServiceUser,
  reason: RejectCode.CallingAeNotRecognized,
};

export type AssociationDecision =
  | {
      ok: true;
      principal: Principal;
      via: 'certificate' | 'user-identity' | 'certificate+user-identity';
      /** Send a User Identity server response (PS3.7 §D.3.3.7.2). */
      identityConfirmed: boolean;
      /** The device certificate that took part, re-checked before every request. */
      certificate?: { fingerprint256: string; deviceId: number };
      audit: Record<string, unknown>;
    }
  | { ok: false; rejection: Rejection; reason: string; audit: Record<string, unknown> };

export interface AuthenticateInput {
  rq: AssociateRq;
  socket: Pick<TLSSocket, 'authorized' | 'authorizationError' | 'getPeerX509Certificate'>;
  source: string;
  aeTitle: string;
  requireBoth: boolean;
  authenticator: DimseAuthenticator;
}

const MAX_USERNAME_BYTES = 256;
const MAX_SECRET_BYTES = 16 * 1024;

export function fingerprintOfDer(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function decodeField(b: Buffer): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}

export async function authenticateAssociation(i: AuthenticateInput): Promise<AssociationDecision> {
  const { rq } = i;
  const audit: Record<string, unknown> = { callingAe: rq.callingAe, calledAe: rq.calledAe };
  const deny = (reason: string, rejection: Rejection = AUTH_REJECTION): AssociationDecision => ({ ok: false, rejection, reason, audit: { ...audit, reason } });

  // PS3.8 §9.3.2: bit 0 of the protocol version must be set.
  if ((rq.protocolVersion & 1) === 0) {
    return deny('protocol-version', { result: RejectCode.ResultPermanent, source: RejectCode.SourceAcse, reason: RejectCode.ProtocolVersionNotSupported });
  }
  if (rq.applicationContext !== APPLICATION_CONTEXT_NAME) {
    return deny('application-context', { result: RejectCode.ResultPermanent, source: RejectCode.SourceServiceUser, reason: RejectCode.ApplicationContextNotSupported });
  }
  if (rq.calledAe !== i.aeTitle) {
    return deny('called-ae', { result: RejectCode.ResultPermanent, source: RejectCode.SourceServiceUser, reason: RejectCode.CalledAeNotRecognized });
  }

  // 1. The certificate, if any.
  let certPrincipal: Principal | null = null;
  let fingerprint256 = '';
  const cert = i.socket.getPeerX509Certificate();
  if (cert) {
    fingerprint256 = fingerprintOfDer(cert.raw);
    audit.certificate = fingerprint256;
    if (!i.socket.authorized) {
      audit.tls = String(i.socket.authorizationError ?? 'unverified');
      return deny('certificate-untrusted');
    }
    certPrincipal = await i.authenticator.byCertificate({ fingerprint256, callingAe: rq.callingAe, source: i.source });
    if (!certPrincipal) return deny('certificate-unknown-or-unbound');
  }

  // 2. The user identity, if any: checked whatever the positive-response flag says.
  let idPrincipal: Principal | null = null;
  const uid = rq.userIdentity;
  if (uid) {
    audit.userIdentityType = uid.type;
    if (uid.type === 2 || uid.type === 5) {
      const primary = decodeField(uid.primary);
      const secondary = uid.type === 2 ? decodeField(uid.secondary) : undefined;
      if (uid.type === 2) audit.username = primary === undefined ? '(invalid)' : primary.slice(0, 64);
      const malformed =
        primary === undefined ||
        primary.length === 0 ||
        (uid.type === 2 && (secondary === undefined || secondary.length === 0 || uid.primary.length > MAX_USERNAME_BYTES || uid.secondary.length > MAX_SECRET_BYTES)) ||
        (uid.type === 5 && uid.primary.length > MAX_SECRET_BYTES);
      if (malformed) return deny('user-identity-malformed');
      idPrincipal = await i.authenticator.byUserIdentity({ type: uid.type, primary, secondary, callingAe: rq.callingAe, source: i.source });
      if (!idPrincipal) return deny('user-identity-failed');
    } else if (!certPrincipal) {
      // A bare username, a Kerberos ticket or a SAML assertion we cannot verify: not a credential.
      return deny('user-identity-unsupported');
    }
  }

  // 3. Combine.
  if (!certPrincipal && !idPrincipal) return deny('no-credentials');
  if (i.requireBoth && (!certPrincipal || !idPrincipal)) return deny('both-required');
  let principal: Principal;
  let via: 'certificate' | 'user-identity' | 'certificate+user-identity';
  if (certPrincipal && idPrincipal) {
    if (idPrincipal.kind === 'device' && (idPrincipal.kind !== certPrincipal.kind || idPrincipal.id !== certPrincipal.id)) return deny('identity-mismatch');
    principal = idPrincipal;
    via = 'certificate+user-identity';
  } else if (certPrincipal) {
    principal = certPrincipal;
    via = 'certificate';
  } else {
    principal = idPrincipal as Principal;
    via = 'user-identity';
  }
  return {
    ok: true,
    principal: { ...principal, source: i.source },
    via,
    identityConfirmed: idPrincipal !== null && uid?.positiveResponseRequested === true,
    ...(certPrincipal ? { certificate: { fingerprint256, deviceId: certPrincipal.id } } : {}),
    audit: { ...audit, via },
  };
}

/** Waits so that a rejection leaves `delayMs` after the request arrived, whatever failed. */
export async function uniformDelay(startedAt: number, delayMs: number): Promise<void> {
  const wait = startedAt + delayMs - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

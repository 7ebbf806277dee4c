// The DimseAuthenticator port on top of the identity service (src/core/identity/index.ts).
// User identity type 2 carries either a user's name and password or a device's AE
// title and passcode (PS3.7 §D.3.3.7.1 leaves the meaning to the acceptor): when the
// primary field is the calling AE title it is a device passcode — which therefore
// only ever authenticates the device calling as itself — otherwise a user login.

import type { HeldCredential, RecheckResult } from '../core/identity/index.js';
import type { Principal } from '../core/principal.js';
import type { DimseAuthenticator, MoveDestination } from './association.js';

export interface IdentityForDimse {
  authenticateDeviceCertificate(i: { fingerprint256: string; callingAe: string; source?: string }): Promise<Principal | null>;
  authenticatePassword(i: { username: string; password: string; source?: string }): Promise<Principal | null>;
  authenticateDevicePasscode(i: { aeTitle: string; passcode: string; source?: string }): Promise<Principal | null>;
  authenticateAccessToken(jwt: string, source?: string): Promise<Principal | null>;
  moveDestination(aeTitle: string): Promise<MoveDestination | null>;
  recheckPrincipal(held: HeldCredential): Promise<RecheckResult>;
}

export function dimseAuthenticatorFrom(identity: IdentityForDimse): DimseAuthenticator {
  return {
    byCertificate: (i) => identity.authenticateDeviceCertificate(i),
    async byUserIdentity(i) {
      if (i.type === 5) return identity.authenticateAccessToken(i.primary, i.source);
      if (i.type !== 2 || i.secondary === undefined) return null;
      if (i.primary.trim() === i.callingAe) return identity.authenticateDevicePasscode({ aeTitle: i.primary.trim(), passcode: i.secondary, source: i.source });
      return identity.authenticatePassword({ username: i.primary, password: i.secondary, source: i.source });
    },
    moveDestination: (ae) => identity.moveDestination(ae),
    recheck: (held) => identity.recheckPrincipal(held),
  };
}

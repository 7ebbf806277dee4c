// Access tokens: short-lived JWTs signed with ES256 (RFC 7518 §3.4) by a key from the
// TokenKeyStore port (core/ports/token-key-store.ts; on disk: pki/token-key-store.ts).
// Keys rotate: the newest key signs, every key still kept verifies (selected by `kid`),
// and a replaced key is dropped once every token it signed has expired. The verifier accepts exactly one algorithm, the
// issuer, the audience and the token type `at+jwt` (RFC 9068 §2.1), requires exp/iat/jti,
// and takes the key only from our own ring: `jku`, `x5u`, `jwk` and `x5c` headers are
// never read (RFC 8725 §3.1, §3.10). fast-jwt is the library under @fastify/jwt, so the
// HTTP door (http/auth.ts, through @fastify/jwt) and the DIMSE door (JWT user identity,
// PS3.7 D.3.3.7) verify with the very same options built here.

import { randomUUID } from 'node:crypto';
import { createSigner, createVerifier, TokenError, type SignerOptions, type VerifierOptions } from 'fast-jwt';
import { unauthenticated } from '../errors.js';
import type { TokenKeyRing, TokenKeyStore } from '../ports/token-key-store.js';

const TOKEN_ALGORITHM = 'ES256' as const;
/** RFC 9068 access-token type: a JWT minted for another purpose cannot pass as one. */
export const TOKEN_TYPE = 'at+jwt';
const CLOCK_TOLERANCE_MS = 5_000;

export interface TokenSettings {
  issuer: string;
  audience: string;
  ttlSeconds: number;
}

export interface AccessClaims {
  /** 'user:<id>' */
  sub: string;
  /** The account's token generation when the token was issued (see UserRecord.tokenGeneration). */
  gen: number;
  iat: number;
  exp: number;
  jti: string;
  iss: string;
  aud: string;
}

export interface TokenService {
  readonly settings: Readonly<TokenSettings>;
  issue(subject: { sub: string; gen: number }): Promise<{ token: string; expiresIn: number }>;
  /** Throws unauthenticated('token-expired' | 'invalid-token'). */
  verify(token: string): Promise<AccessClaims>;
  /** The verifying key for a token header's kid; undefined for an unknown or missing kid. */
  publicKeyFor(kid: unknown): string | undefined;
  /**
   * Like publicKeyFor, but an unknown kid first re-reads the key store (at most every
   * 10 s): a key rotated by the CLI or another process is picked up without a restart.
   */
  keyFor(kid: unknown): Promise<string | undefined>;
  /** Options for fast-jwt's verifier (and @fastify/jwt's `verify`), without key and maxAge. */
  verifierOptions(): Partial<VerifierOptions>;
  /** maxAge: a token older than this is refused even if its exp says otherwise. */
  readonly maxAgeSeconds: number;
  /** Writes a new signing key and returns its kid; older keys keep verifying until their tokens expire. */
  rotate(): Promise<string>;
  /** Re-reads the key store (after a rotation by another process or the CLI). */
  reload(): Promise<void>;
}

// --- the service ----------------------------------------------------------------------

/** A token service over a key store: keys are loaded now, re-read on rotation and on unknown kids. */
export async function openTokenService(opts: {
  keys: TokenKeyStore;
  settings: TokenSettings;
  now?: () => Date;
}): Promise<TokenService> {
  const now = opts.now ?? (() => new Date());
  const retainMs = opts.settings.ttlSeconds * 1000 + CLOCK_TOLERANCE_MS + 60_000;
  const load = () => opts.keys.load({ retainMs, now: now() });
  const service = createTokenService({ ring: await load(), settings: opts.settings, now, reloadRing: load });
  return {
    ...service,
    async rotate() {
      const kid = await opts.keys.create(now());
      service.setRing(await load());
      return kid;
    },
    reload: service.reload,
  };
}

/** A token service over an in-memory ring (tests, or keys configured from elsewhere). */
function createTokenService(opts: {
  ring: TokenKeyRing;
  settings: TokenSettings;
  now?: () => Date;
  /** Re-reads the ring (openTokenService: from the key store). */
  reloadRing?: () => Promise<TokenKeyRing>;
}): TokenService & { setRing(ring: TokenKeyRing): void } {
  const now = opts.now ?? (() => new Date());
  const settings = Object.freeze({ ...opts.settings });
  let ring = opts.ring;
  let loadedAt = now().getTime();
  const maxAgeSeconds = settings.ttlSeconds + CLOCK_TOLERANCE_MS / 1000;

  /** Reloads when the ring is older than `maxAgeMs`; never throws (a bad read keeps the old ring). */
  async function refresh(maxAgeMs: number): Promise<void> {
    if (!opts.reloadRing || now().getTime() - loadedAt < maxAgeMs) return;
    loadedAt = now().getTime();
    try {
      ring = await opts.reloadRing();
    } catch {
      // keep verifying and signing with the ring we have
    }
  }

  const verifierOptions = (): Partial<VerifierOptions> => ({
    algorithms: [TOKEN_ALGORITHM],
    allowedIss: settings.issuer,
    allowedAud: settings.audience,
    requiredClaims: ['sub', 'gen', 'iat', 'exp', 'jti', 'iss', 'aud'],
    checkTyp: TOKEN_TYPE,
    clockTolerance: CLOCK_TOLERANCE_MS,
    cache: false,
  });

  const publicKeyFor = (kid: unknown): string | undefined => (typeof kid === 'string' ? ring.publicKeys.get(kid) : undefined);
  // An unknown kid re-reads the store (a key rotated by the CLI or by another node on the
  // same database), at most once a second whatever the periodic reloads did, and one read
  // at a time: garbage kids sprayed by an attacker cost at most one query per second.
  let kidReloadAt = 0;
  let kidReload: Promise<void> | undefined;
  const keyFor = async (kid: unknown): Promise<string | undefined> => {
    if (typeof kid !== 'string' || kid.length > 64) return undefined;
    if (!ring.publicKeys.has(kid) && opts.reloadRing) {
      if (!kidReload && now().getTime() - kidReloadAt >= 1_000) {
        kidReloadAt = now().getTime();
        kidReload = refresh(0).finally(() => (kidReload = undefined));
      }
      await kidReload;
    }
    return publicKeyFor(kid);
  };

  const verifier = () =>
    createVerifier({
      ...verifierOptions(),
      maxAge: maxAgeSeconds * 1000,
      clockTimestamp: undefined,
      key: async ({ header }: { header: { kid?: unknown } }) => {
        const key = await keyFor(header.kid);
        if (!key) throw new Error('unknown key id');
        return key;
      },
    });

  return {
    settings,
    maxAgeSeconds,
    publicKeyFor,
    keyFor,
    verifierOptions,
    setRing(r) {
      ring = r;
      loadedAt = now().getTime();
    },
    async issue(subject) {
      // Sign with the newest key stored (another process or the CLI may have rotated).
      await refresh(60_000);
      const options = {
        key: ring.signing.privateKeyPem,
        algorithm: TOKEN_ALGORITHM,
        kid: ring.signing.kid,
        typ: TOKEN_TYPE,
        iss: settings.issuer,
        aud: settings.audience,
        sub: subject.sub,
        jti: randomUUID(),
        expiresIn: settings.ttlSeconds * 1000,
        clockTimestamp: now().getTime(),
      };
      // fast-jwt's typings omit `typ`, which its signer reads (src/signer.js).
      const signer = createSigner(options as Partial<SignerOptions & { key: string }>);
      return { token: signer({ gen: subject.gen }), expiresIn: settings.ttlSeconds };
    },
    async verify(token) {
      if (typeof token !== 'string' || token.length > 8192) throw unauthenticated('invalid-token', 'invalid access token');
      try {
        const claims = (await verifier()(token)) as AccessClaims;
        if (!isAccessClaims(claims)) throw unauthenticated('invalid-token', 'invalid access token');
        return claims;
      } catch (e) {
        if (e instanceof TokenError && e.code === TokenError.codes.expired) throw unauthenticated('token-expired', 'the access token has expired');
        throw unauthenticated('invalid-token', 'invalid access token');
      }
    },
    rotate() {
      return Promise.reject(new Error('rotation needs a key store (openTokenService)'));
    },
    async reload() {
      if (opts.reloadRing) {
        ring = await opts.reloadRing();
        loadedAt = now().getTime();
      }
    },
  };
}

/** Shape check after signature verification: types, not just presence. */
export function isAccessClaims(c: unknown): c is AccessClaims {
  if (!c || typeof c !== 'object') return false;
  const o = c as Record<string, unknown>;
  return (
    typeof o.sub === 'string' &&
    /^user:\d{1,15}$/.test(o.sub) &&
    Number.isSafeInteger(o.gen) &&
    typeof o.iat === 'number' &&
    typeof o.exp === 'number' &&
    typeof o.jti === 'string'
  );
}

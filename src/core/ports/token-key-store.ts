// The port the token service keeps its signing keys behind; the filesystem implementation
// (one PKCS#8 file per key, mode 0600) is pki/token-key-store.ts. Keys rotate: the newest
// signs, every key still kept verifies (selected by `kid`), and a replaced key is dropped
// once every token it signed has expired.

export interface TokenKeyRing {
  signing: { kid: string; privateKeyPem: string };
  /** kid → SPKI PEM of every key that may still have live tokens. */
  publicKeys: ReadonlyMap<string, string>;
}

export interface TokenKeyStore {
  /**
   * Every usable ES256 key (creating the first when there is none); keys replaced more
   * than `retainMs` before `now` are deleted, their tokens having all expired.
   */
  load(opts: { retainMs: number; now: Date }): Promise<TokenKeyRing>;
  /** Stores a fresh ES256 signing key created at `now`; returns its kid. */
  create(now: Date): Promise<string>;
}

// The one entry point to @peculiar/x509 in Tresor: it installs the Reflect metadata
// shim the library needs before the library is evaluated (ESM evaluates imports in
// order), and points the library at Node's WebCrypto.
import './reflect-metadata.js';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

// The one entry point to @peculiar/x509 in Tresor: it loads the Reflect metadata
// polyfill the library's dependency (tsyringe) requires before the library is
// evaluated (ESM evaluates imports in order), and points the library at Node's WebCrypto.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

// The edge bundle: what `tresor device bundle AE --edge --listen HOST:PORT --allow
// ADDR[,ADDR…] --out DIR` and the console's download produce from a device's issued
// certificate — DIR/edge.json, the device's key (0600), its certificate and Tresor's
// CA. A second device bundled into the same DIR is added to the existing edge.json
// (one edge may serve several devices). The result is checked with the same parser
// `tresor edge` uses, so a bundle that would not start is never written.

import { readFile } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../lib/fs-atomic.js';
import { EDGE_NAME_PATTERN } from './announce.js';
import { EdgeConfigError, isAeTitle, parseEdgeConfig, type Endpoint } from './config.js';

export interface EdgeBundleInput {
  /** The edge's name (announced to Tresor); kept from an existing edge.json. */
  edgeName: string;
  aeTitle: string;
  certificatePem: string;
  /** Written with mode 0600; never logged. */
  privateKeyPem: string;
  caPem: string;
  tresor: { host: string; port: number; aeTitle: string; serverName?: string };
  listen: Endpoint;
  allow: string[];
  storageScp?: { listen: Endpoint; target: Endpoint; allow?: string[] };
}

/** "HOST:PORT", "[v6]:PORT" → endpoint (the `--listen` option). */
export function parseEndpoint(s: string): Endpoint {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new EdgeConfigError([`${s}: expected HOST:PORT`]);
  return { host: m[1] ?? m[2], port };
}

/** "ADDR[,ADDR…]" → list (the `--allow` option); entries are checked with the config. */
export const parseAllow = (s: string): string[] =>
  s
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');

const fileBase = (ae: string) => ae.replace(/[^A-Za-z0-9_-]/g, '_');

/** Writes (or extends) DIR/edge.json and the device's files; returns the config file's path. */
export async function writeEdgeBundle(outDir: string, b: EdgeBundleInput): Promise<string> {
  const problems: string[] = [];
  if (!EDGE_NAME_PATTERN.test(b.edgeName)) problems.push('edge name: must be 1–11 characters A-Z 0-9 _ -');
  if (!isAeTitle(b.aeTitle)) problems.push('AE title: must be 1–16 characters, no backslash');
  if (!/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(b.privateKeyPem)) problems.push('private key: not a PEM private key');
  if (problems.length) throw new EdgeConfigError(problems);

  await mkdir(outDir, { recursive: true, mode: 0o700 });
  const configFile = path.join(outDir, 'edge.json');
  let existing: Record<string, unknown> | undefined;
  try {
    existing = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new EdgeConfigError([`${configFile}: exists but is not valid JSON`]);
  }
  const base = fileBase(b.aeTitle);
  const device = {
    aeTitle: b.aeTitle,
    certFile: `${base}.crt`,
    keyFile: `${base}.key`,
    listen: b.listen,
    ...(b.allow.length ? { allow: b.allow } : {}),
    ...(b.storageScp ? { storageScp: { listen: b.storageScp.listen, target: b.storageScp.target, ...(b.storageScp.allow?.length ? { allow: b.storageScp.allow } : {}) } } : {}),
  };
  const others = Array.isArray(existing?.devices) ? (existing.devices as { aeTitle?: unknown }[]).filter((d) => d?.aeTitle !== b.aeTitle) : [];
  const config = {
    ...(existing ?? {}),
    name: existing?.name ?? b.edgeName,
    tresor: { host: b.tresor.host, port: b.tresor.port, aeTitle: b.tresor.aeTitle, caFile: 'tresor-ca.crt', ...(b.tresor.serverName ? { serverName: b.tresor.serverName } : {}) },
    devices: [...others, device],
  };
  const { problems: invalid } = parseEdgeConfig(config, outDir);
  if (invalid.length) throw new EdgeConfigError(invalid);

  await writeFileAtomic(path.join(outDir, `${base}.key`), b.privateKeyPem, 0o600);
  await writeFileAtomic(path.join(outDir, `${base}.crt`), b.certificatePem, 0o644);
  await writeFileAtomic(path.join(outDir, 'tresor-ca.crt'), b.caPem, 0o644);
  await writeFileAtomic(configFile, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  return configFile;
}

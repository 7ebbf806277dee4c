// Device bundles: what `tresor device bundle AE --out DIR` and the console's download
// (POST /admin/devices/{ae}/bundle, a ZIP) both produce from a device's issued
// certificate. One builder of the file contents for both, so they cannot drift:
//   plain: <AE>.key (0600), <AE>.crt, tresor-ca.crt, storescu.sh (a ready-to-run dcmtk
//          line: `./storescu.sh FILE…`), orthanc.json (DicomModalities + DICOM TLS
//          settings for an Orthanc acting as this device) and README.txt;
//   edge:  edge.json for `tresor edge`, the key (0600), certificate and CA.
// A second device bundled into the same DIR is added to the existing edge.json (one
// edge may serve several devices). The edge config is checked with the same parser
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

export const fileBase = (ae: string) => ae.replace(/[^A-Za-z0-9_-]/g, '_');
/** POSIX shell single quoting. */
const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** One file of a bundle: its name inside the bundle, its content and its mode. */
export interface BundleFile {
  name: string;
  content: string;
  mode: number;
}

export interface DeviceBundleInput {
  aeTitle: string;
  certificatePem: string;
  /** Written with mode 0600; never logged. */
  privateKeyPem: string;
  caPem: string;
  /** Tresor's DICOM TLS service as the device reaches it. */
  tresor: { host: string; port: number; aeTitle: string };
  /** Where the files will live (absolute), for orthanc.json's paths; absent: bare file names. */
  dir?: string;
  /** The certificate's end, for the README. */
  notAfter?: string;
}

export function storescuScript(o: { aeTitle: string; calledAe: string; host: string; port: number; key: string; cert: string; ca: string }): string {
  return [
    '#!/bin/sh',
    `# Sends DICOM files to Tresor as ${o.aeTitle} over TLS with this bundle's key and certificate.`,
    '# Usage: ./storescu.sh FILE... (add dcmtk options before the files, e.g. +sd +r DIR to send a folder;',
    '# for compressed files -R with the option of their transfer syntax: -xs, -xv, -xw, -xy, ...).',
    'D="$(cd "$(dirname "$0")" && pwd)"',
    `exec storescu --aetitle ${sh(o.aeTitle)} --call ${sh(o.calledAe)} --enable-tls "$D/${o.key}" "$D/${o.cert}" --add-cert-file "$D/${o.ca}" ${sh(o.host)} ${o.port} "$@"`,
    '',
  ].join('\n');
}

/** The files of a plain device bundle (dcmtk and Orthanc settings). */
export function deviceBundleFiles(b: DeviceBundleInput): BundleFile[] {
  const base = fileBase(b.aeTitle);
  const files = { key: `${base}.key`, cert: `${base}.crt`, ca: 'tresor-ca.crt' };
  const at = (f: string) => (b.dir ? path.join(b.dir, f) : f);
  // Orthanc ≥ 1.9 (DICOM TLS): the device is the Orthanc; Tresor is its modality "tresor".
  const orthanc = {
    DicomAet: b.aeTitle,
    DicomTlsEnabled: true,
    DicomTlsCertificate: at(files.cert),
    DicomTlsPrivateKey: at(files.key),
    DicomTlsTrustedCertificates: at(files.ca),
    DicomModalities: { tresor: { AET: b.tresor.aeTitle, Host: b.tresor.host, Port: b.tresor.port, UseDicomTls: true } },
  };
  const storescu = storescuScript({ aeTitle: b.aeTitle, calledAe: b.tresor.aeTitle, host: b.tresor.host, port: b.tresor.port, ...files });
  const readme = [
    `Tresor device bundle for AE title ${b.aeTitle}${b.notAfter ? ` (certificate valid until ${b.notAfter})` : ''}`,
    '',
    `${files.key}   the device's private key: keep it secret (mode 0600), it is shown only once`,
    `${files.cert}   the device's certificate, issued by Tresor's CA (any earlier one is revoked)`,
    `${files.ca}   Tresor's CA: what the device trusts Tresor's certificate with`,
    '',
    `Send files with dcmtk (DICOM over TLS to ${b.tresor.aeTitle} at ${b.tresor.host}:${b.tresor.port}):`,
    '  ./storescu.sh FILE...',
    'which runs:',
    `  storescu --aetitle ${sh(b.aeTitle)} --call ${sh(b.tresor.aeTitle)} --enable-tls ${files.key} ${files.cert} --add-cert-file ${files.ca} ${sh(b.tresor.host)} ${b.tresor.port} FILE...`,
    '',
    'Orthanc (1.9 or later) acting as this device: merge orthanc.json into its configuration;',
    `its DicomModalities entry "tresor" is Tresor. ${b.dir ? '' : 'Make the three DicomTls* paths absolute (where you put these files). '}`,
    JSON.stringify({ DicomModalities: orthanc.DicomModalities }, null, 2),
    '',
  ].join('\n');
  return [
    { name: files.key, content: b.privateKeyPem, mode: 0o600 },
    { name: files.cert, content: b.certificatePem, mode: 0o644 },
    { name: files.ca, content: b.caPem, mode: 0o644 },
    { name: 'storescu.sh', content: storescu, mode: 0o755 },
    { name: 'orthanc.json', content: `${JSON.stringify(orthanc, null, 2)}\n`, mode: 0o644 },
    { name: 'README.txt', content: readme, mode: 0o644 },
  ];
}

/**
 * edge.json for one device, merged into an existing one (other devices kept), checked
 * with the parser `tresor edge` uses: throws EdgeConfigError naming every problem. Needs
 * no key, so a caller can check it before a certificate is issued.
 */
export function edgeConfigFor(b: Omit<EdgeBundleInput, 'certificatePem' | 'privateKeyPem' | 'caPem'>, existing: Record<string, unknown> | undefined, baseDir: string): Record<string, unknown> {
  const problems: string[] = [];
  if (!EDGE_NAME_PATTERN.test(b.edgeName)) problems.push('edge name: must be 1–11 characters A-Z 0-9 _ -');
  if (!isAeTitle(b.aeTitle)) problems.push('AE title: must be 1–16 characters, no backslash');
  if (problems.length) throw new EdgeConfigError(problems);
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
  const { problems: invalid } = parseEdgeConfig(config, baseDir);
  if (invalid.length) throw new EdgeConfigError(invalid);
  return config;
}

/** The files of an edge bundle: edge.json (0600), the device's key (0600), certificate and CA. */
export function edgeBundleFiles(b: EdgeBundleInput, existing: Record<string, unknown> | undefined, baseDir: string): BundleFile[] {
  if (!/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(b.privateKeyPem)) throw new EdgeConfigError(['private key: not a PEM private key']);
  const config = edgeConfigFor(b, existing, baseDir);
  const base = fileBase(b.aeTitle);
  return [
    { name: `${base}.key`, content: b.privateKeyPem, mode: 0o600 },
    { name: `${base}.crt`, content: b.certificatePem, mode: 0o644 },
    { name: 'tresor-ca.crt', content: b.caPem, mode: 0o644 },
    { name: 'edge.json', content: `${JSON.stringify(config, null, 2)}\n`, mode: 0o600 },
  ];
}

/** Writes (or extends) DIR/edge.json and the device's files; returns the config file's path. */
export async function writeEdgeBundle(outDir: string, b: EdgeBundleInput): Promise<string> {
  const configFile = path.join(outDir, 'edge.json');
  let existing: Record<string, unknown> | undefined;
  try {
    existing = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new EdgeConfigError([`${configFile}: exists but is not valid JSON`]);
  }
  const files = edgeBundleFiles(b, existing, outDir);
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  // edge.json last: it names the others.
  for (const f of files) await writeFileAtomic(path.join(outDir, f.name), f.content, f.mode);
  return configFile;
}

// edge.json: what one `tresor edge` serves. Parsed strictly, once, at start: every
// problem is reported (one line each) and the edge does not start with any of them.
// File paths are relative to the config file's directory. Private keys must be
// readable by their owner only (mode 0600): the edge holds devices' identities.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { EDGE_NAME_PATTERN } from './announce.js';

export interface Endpoint {
  host: string;
  port: number;
}

export interface EdgeDevice {
  aeTitle: string;
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
  /** Where the device's associations arrive (plain DICOM). */
  listen: Endpoint;
  /** Source addresses or CIDR blocks; empty = any (only allowed on a loopback listener). */
  allow: string[];
  /** The device as a C-MOVE destination: Tresor connects (mutual TLS) to `listen`, the edge to `target`. */
  storageScp?: { listen: Endpoint; target: Endpoint; allow: string[] };
}

export interface EdgeLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** Largest P-DATA-TF the edge accepts from either side (announced in both directions). */
  maxPduBytes: number;
}

export interface EdgeTimeouts {
  handshakeMs: number;
  connectMs: number;
  artimMs: number;
  idleMs: number;
  pduMs: number;
  writeStallMs: number;
}

export interface EdgeConfig {
  name: string;
  tresor: { host: string; port: number; aeTitle: string; serverName: string; caFile: string; caPem: string };
  devices: EdgeDevice[];
  limits: EdgeLimits;
  timeouts: EdgeTimeouts;
}

export const DEFAULT_EDGE_LIMITS: EdgeLimits = { maxConnections: 64, maxConnectionsPerAddress: 16, maxPduBytes: 1024 * 1024 };
/** Like Tresor's (dimse/server.ts); idle is longer because the edge cannot see that an operation is in progress upstream. */
export const DEFAULT_EDGE_TIMEOUTS: EdgeTimeouts = { handshakeMs: 10_000, connectMs: 10_000, artimMs: 30_000, idleMs: 300_000, pduMs: 60_000, writeStallMs: 60_000 };

export class EdgeConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`edge config: ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'EdgeConfigError';
  }
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

/** PS3.5 §6.2 (VR AE): 1–16 characters of the default repertoire, no backslash, not all spaces. */
export function isAeTitle(v: unknown): v is string {
  return typeof v === 'string' && /^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(v) && v.trim() === v && v !== '';
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return net.isIPv4(host) && host.startsWith('127.');
}

/** Parses an allow-list entry (address or CIDR block) into `list`; false if invalid. */
export function addAllowed(list: net.BlockList, entry: string): boolean {
  const [addr, bits, extra] = entry.split('/');
  const type = net.isIPv4(addr) ? 'ipv4' : net.isIPv6(addr) ? 'ipv6' : undefined;
  if (!type || extra !== undefined) return false;
  if (bits === undefined) {
    list.addAddress(addr, type);
    return true;
  }
  const n = Number(bits);
  if (!/^\d{1,3}$/.test(bits) || n > (type === 'ipv4' ? 32 : 128)) return false;
  list.addSubnet(addr, n, type);
  return true;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Checker {
  readonly problems: string[] = [];
  problem(where: string, what: string): void {
    this.problems.push(`${where}: ${what}`);
  }
  only(o: Obj, where: string, keys: string[]): void {
    for (const k of Object.keys(o)) if (!keys.includes(k)) this.problem(`${where}.${k}`, 'unknown setting');
  }
  obj(o: Obj, key: string, where: string, required = true): Obj | undefined {
    const v = o[key];
    if (v === undefined && !required) return undefined;
    if (!isObj(v)) {
      this.problem(`${where}.${key}`, 'must be an object');
      return undefined;
    }
    return v;
  }
  str(o: Obj, key: string, where: string, test: (s: string) => boolean, rule: string, fallback?: string): string {
    const v = o[key];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'string' || !test(v)) {
      this.problem(`${where}.${key}`, rule);
      return '';
    }
    return v;
  }
  int(o: Obj, key: string, where: string, min: number, max: number, fallback?: number): number {
    const v = o[key];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.problem(`${where}.${key}`, `must be an integer from ${min} to ${max}`);
      return fallback ?? min;
    }
    return v;
  }
  endpoint(o: Obj, key: string, where: string, listening: boolean): Endpoint {
    const e = this.obj(o, key, where);
    if (!e) return { host: '', port: 0 };
    this.only(e, `${where}.${key}`, ['host', 'port']);
    const host = this.str(e, 'host', `${where}.${key}`, (s) => s.length > 0 && s.length <= 253 && /^[A-Za-z0-9.:_-]+$/.test(s), 'must be a host name or IP address');
    const port = this.int(e, 'port', `${where}.${key}`, listening ? 0 : 1, 65535);
    return { host, port };
  }
  allow(o: Obj, where: string, listen: Endpoint): string[] {
    const v = o.allow;
    let list: string[] = [];
    if (v !== undefined) {
      if (!Array.isArray(v) || v.length === 0) this.problem(`${where}.allow`, 'must be a non-empty list of IP addresses or CIDR blocks');
      else
        for (const [i, a] of v.entries()) {
          if (typeof a !== 'string' || !addAllowed(new net.BlockList(), a)) this.problem(`${where}.allow[${i}]`, 'not an IP address or CIDR block');
          else list = [...list, a];
        }
    }
    // The issue's rule: reachable from the network ⇒ an explicit list of who may use it.
    if (v === undefined && listen.host !== '' && !isLoopback(listen.host)) this.problem(`${where}.allow`, `required: ${listen.host} is not a loopback address`);
    return list;
  }
}

/** Validates the JSON shape; returns the config without file contents, and every problem. */
export function parseEdgeConfig(raw: unknown, baseDir: string): { config: Omit<EdgeConfig, 'devices' | 'tresor'> & { tresor: Omit<EdgeConfig['tresor'], 'caPem'>; devices: Omit<EdgeDevice, 'certPem' | 'keyPem'>[] }; problems: string[] } {
  const c = new Checker();
  const root: Obj = isObj(raw) ? raw : {};
  if (!isObj(raw)) c.problem('edge.json', 'must be a JSON object');
  c.only(root, 'edge', ['name', 'tresor', 'devices', 'limits', 'timeouts']);
  const name = c.str(root, 'name', 'edge', (s) => EDGE_NAME_PATTERN.test(s), 'must be 1–11 characters A-Z 0-9 _ -');

  const t = c.obj(root, 'tresor', 'edge') ?? {};
  c.only(t, 'edge.tresor', ['host', 'port', 'aeTitle', 'caFile', 'serverName']);
  const tresor = {
    host: c.str(t, 'host', 'edge.tresor', (s) => /^[A-Za-z0-9.:_-]{1,253}$/.test(s), 'must be a host name or IP address'),
    port: c.int(t, 'port', 'edge.tresor', 1, 65535),
    aeTitle: c.str(t, 'aeTitle', 'edge.tresor', isAeTitle, 'must be an AE title (1–16 characters, no backslash)'),
    caFile: path.resolve(baseDir, c.str(t, 'caFile', 'edge.tresor', (s) => s.length > 0, 'must be a file name')),
    // The name Tresor's server certificate must carry (its SAN); the host by default.
    serverName: c.str(t, 'serverName', 'edge.tresor', (s) => /^[A-Za-z0-9.:_-]{1,253}$/.test(s), 'must be a host name or IP address', String(t.host ?? '')),
  };

  const l = c.obj(root, 'limits', 'edge', false) ?? {};
  c.only(l, 'edge.limits', Object.keys(DEFAULT_EDGE_LIMITS));
  const limits: EdgeLimits = {
    maxConnections: c.int(l, 'maxConnections', 'edge.limits', 1, 10_000, DEFAULT_EDGE_LIMITS.maxConnections),
    maxConnectionsPerAddress: c.int(l, 'maxConnectionsPerAddress', 'edge.limits', 1, 10_000, DEFAULT_EDGE_LIMITS.maxConnectionsPerAddress),
    // PS3.8 §D.1 / dcmtk's ASC_MINIMUMPDUSIZE: peers never go below 4 KiB.
    maxPduBytes: c.int(l, 'maxPduBytes', 'edge.limits', 4096, 64 * 1024 * 1024, DEFAULT_EDGE_LIMITS.maxPduBytes),
  };
  const tm = c.obj(root, 'timeouts', 'edge', false) ?? {};
  c.only(tm, 'edge.timeouts', Object.keys(DEFAULT_EDGE_TIMEOUTS));
  const ms = (k: keyof EdgeTimeouts) => c.int(tm, k, 'edge.timeouts', 100, 3_600_000, DEFAULT_EDGE_TIMEOUTS[k]);
  const timeouts: EdgeTimeouts = { handshakeMs: ms('handshakeMs'), connectMs: ms('connectMs'), artimMs: ms('artimMs'), idleMs: ms('idleMs'), pduMs: ms('pduMs'), writeStallMs: ms('writeStallMs') };
  // The far side's request must be answered within the near side's ARTIM (relay.ts).
  if (timeouts.artimMs < timeouts.connectMs + 2000) c.problem('edge.timeouts.artimMs', 'must be at least connectMs + 2000');

  const devices: Omit<EdgeDevice, 'certPem' | 'keyPem'>[] = [];
  if (!Array.isArray(root.devices) || root.devices.length === 0) c.problem('edge.devices', 'must be a non-empty list');
  const seenAe = new Set<string>();
  const downstreamPorts = new Set<string>();
  for (const [i, d] of (Array.isArray(root.devices) ? root.devices : []).entries()) {
    const w = `edge.devices[${i}]`;
    if (!isObj(d)) {
      c.problem(w, 'must be an object');
      continue;
    }
    c.only(d, w, ['aeTitle', 'certFile', 'keyFile', 'listen', 'allow', 'storageScp']);
    const aeTitle = c.str(d, 'aeTitle', w, isAeTitle, 'must be an AE title (1–16 characters, no backslash)');
    if (aeTitle && seenAe.has(aeTitle)) c.problem(`${w}.aeTitle`, `${aeTitle} is listed twice`);
    seenAe.add(aeTitle);
    const listen = c.endpoint(d, 'listen', w, true);
    const allow = c.allow(d, w, listen);
    let storageScp: EdgeDevice['storageScp'];
    const s = c.obj(d, 'storageScp', w, false);
    if (s) {
      c.only(s, `${w}.storageScp`, ['listen', 'target', 'allow']);
      const sl = c.endpoint(s, 'listen', `${w}.storageScp`, true);
      const key = `${sl.host}:${sl.port}`;
      if (sl.port !== 0 && downstreamPorts.has(key)) c.problem(`${w}.storageScp.listen`, `${key} is used twice`);
      downstreamPorts.add(key);
      storageScp = { listen: sl, target: c.endpoint(s, 'target', `${w}.storageScp`, false), allow: c.allow(s, `${w}.storageScp`, sl) };
    }
    devices.push({
      aeTitle,
      certFile: path.resolve(baseDir, c.str(d, 'certFile', w, (v) => v.length > 0, 'must be a file name')),
      keyFile: path.resolve(baseDir, c.str(d, 'keyFile', w, (v) => v.length > 0, 'must be a file name')),
      listen,
      allow,
      storageScp,
    });
  }
  for (const d of devices) {
    if (d.listen.port !== 0 && downstreamPorts.has(`${d.listen.host}:${d.listen.port}`)) c.problem(`device ${d.aeTitle}`, 'its listen address is also a storageScp listen address');
  }
  return { config: { name, tresor, devices, limits, timeouts }, problems: c.problems };
}

async function readText(file: string, what: string, problems: string[]): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    problems.push(`${what}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    return '';
  }
}

/** Reads and checks edge.json and every file it names. Throws EdgeConfigError listing all problems. */
export async function loadEdgeConfig(file: string): Promise<EdgeConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new EdgeConfigError([`${file}: ${e instanceof SyntaxError ? 'not valid JSON' : `cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`}`]);
  }
  const { config, problems } = parseEdgeConfig(raw, path.dirname(path.resolve(file)));
  if (problems.length) throw new EdgeConfigError(problems);

  const caPem = await readText(config.tresor.caFile, 'edge.tresor.caFile', problems);
  if (caPem) {
    try {
      if (!new X509Certificate(caPem).ca) problems.push('edge.tresor.caFile: not a CA certificate');
    } catch {
      problems.push('edge.tresor.caFile: not a PEM certificate');
    }
  }
  const devices: EdgeDevice[] = [];
  for (const d of config.devices) {
    const w = `device ${d.aeTitle}`;
    const certPem = await readText(d.certFile, `${w} certFile`, problems);
    const keyPem = await readText(d.keyFile, `${w} keyFile`, problems);
    try {
      const mode = (await stat(d.keyFile)).mode & 0o777;
      // Nobody but the owner may read a device's private key.
      if (mode & 0o077) problems.push(`${w} keyFile: ${d.keyFile} has mode ${mode.toString(8).padStart(4, '0')}; it must be 0600 (chmod 600 ${d.keyFile})`);
    } catch {
      // reported by readText
    }
    if (certPem && keyPem) {
      try {
        const cert = new X509Certificate(certPem);
        if (!cert.checkPrivateKey(createPrivateKey(keyPem))) problems.push(`${w}: the key does not belong to the certificate`);
        // pki/device-cert.ts: subject CN = AE title; Tresor binds the certificate to that device.
        if (!cert.subject.split('\n').includes(`CN=${d.aeTitle}`)) problems.push(`${w}: the certificate is not issued to ${d.aeTitle}`);
        if (caPem && !cert.checkIssued(new X509Certificate(caPem))) problems.push(`${w}: the certificate is not issued by Tresor's CA (edge.tresor.caFile)`);
        if (new Date(cert.validTo).getTime() < Date.now()) problems.push(`${w}: the certificate expired on ${cert.validTo}`);
        // Tresor (a TLS client) only accepts a server certificate from a C-MOVE destination; Tresor
        // issues serverAuth to devices registered with host and port (pki/device-cert.ts).
        if (d.storageScp && !(cert.keyUsage ?? []).includes(SERVER_AUTH)) {
          problems.push(`${w}: storageScp needs a certificate with serverAuth; register the device with host and port in Tresor and issue its certificate again`);
        }
      } catch {
        problems.push(`${w}: certificate or key is not valid PEM`);
      }
    }
    devices.push({ ...d, certPem, keyPem });
  }
  if (problems.length) throw new EdgeConfigError(problems);
  return { ...config, tresor: { ...config.tresor, caPem }, devices };
}

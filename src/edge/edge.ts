// `tresor edge`: the DICOM-aware TLS gateway for devices without TLS (issue 12).
//  - Upstream: per device a plain listener; an association is relayed to Tresor over
//    mutual TLS with the device's certificate only if the called AE is Tresor's, the
//    calling AE is a device served on that listener and the source address is in
//    that device's allow-list — checked on the A-ASSOCIATE-RQ, before any upstream
//    connection exists.
//  - Downstream (C-MOVE destinations): a TLS listener presenting the device's
//    certificate; only Tresor (a certificate of Tresor's CA valid for Tresor's server
//    name, calling AE = Tresor's AE, called AE = the device) is relayed to the device's
//    plain storage SCP.
// The edge never parses DIMSE messages and never logs anything from inside them.

import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { GuardLimits } from '../dimse/protocol/guard.js';
import { socketReady } from '../lib/socket-connect.js';
import { BCP195_CIPHERS, listenTls, type TlsListener } from '../dimse/protocol/listener.js';
import { RejectCode, type AssociateRq } from '../dimse/protocol/pdu.js';
import { edgeVersionName } from './announce.js';
import { addAllowed, type EdgeConfig, type EdgeDevice } from './config.js';
import { refusalLog } from './refusal-log.js';
import { connectionBudget, listenPlain, type PlainListener } from './plain-listener.js';
import { ConnectError, POLICY_REJECTION, relay, TLS_REJECTION, UNREACHABLE_REJECTION, type Verdict } from './relay.js';
import { editUserInformation } from './user-info.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CALLED_AE_REJECTION = { result: RejectCode.ResultPermanent, source: RejectCode.SourceServiceUser, reason: RejectCode.CalledAeNotRecognized };

export interface RunningEdge {
  upstream: { aeTitles: string[]; host: string; port: number }[];
  downstream: { aeTitle: string; host: string; port: number }[];
  close(): Promise<void>;
}

function allowList(entries: string[]): net.BlockList | undefined {
  if (entries.length === 0) return undefined;
  const list = new net.BlockList();
  for (const e of entries) addAllowed(list, e);
  return list;
}

const allowed = (list: net.BlockList | undefined, address: string) => !list || list.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');

/** TLS errors that retrying will not fix (identity), as opposed to an unreachable Tresor. */
function isTlsIdentityError(e: NodeJS.ErrnoException): boolean {
  return /CERT|SIGNATURE|ALTNAME|VERIFY|SELF_SIGNED|ISSUER|alert/i.test(`${e.code ?? ''} ${e.message}`);
}

function connectTls(cfg: EdgeConfig, d: EdgeDevice): Promise<net.Socket> {
  const t = cfg.tresor;
  const s = tls.connect({
    host: t.host,
    port: t.port,
    servername: net.isIP(t.serverName) ? undefined : t.serverName,
    key: d.keyPem,
    cert: d.certPem,
    ca: t.caPem,
    minVersion: 'TLSv1.2',
    ciphers: BCP195_CIPHERS,
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(t.serverName, cert),
  });
  return socketReady(s, 'secureConnect', {
    timeoutMs: cfg.timeouts.connectMs,
    onTimeout: () => new ConnectError('Tresor did not complete the TLS handshake in time', UNREACHABLE_REJECTION),
    onError: (e) => new ConnectError(`cannot reach Tresor (${e.code ?? e.message})`, isTlsIdentityError(e) ? TLS_REJECTION : UNREACHABLE_REJECTION),
  });
}

function connectPlain(target: { host: string; port: number }, timeoutMs: number): Promise<net.Socket> {
  return socketReady(net.connect({ host: target.host, port: target.port }), 'connect', {
    timeoutMs,
    onTimeout: () => new ConnectError('the device did not accept the connection in time', UNREACHABLE_REJECTION),
    onError: (e) => new ConnectError(`cannot reach the device (${e.code ?? e.message})`, UNREACHABLE_REJECTION),
  });
}

export async function startEdge(cfg: EdgeConfig, logger: Logger): Promise<RunningEdge> {
  const limits: GuardLimits = {
    maxPduBytes: cfg.limits.maxPduBytes,
    artimMs: cfg.timeouts.artimMs,
    idleMs: cfg.timeouts.idleMs,
    pduMs: cfg.timeouts.pduMs,
    writeStallMs: cfg.timeouts.writeStallMs,
  };
  const budget = connectionBudget(cfg.limits.maxConnections, cfg.limits.maxConnectionsPerAddress);
  const served = new Set(cfg.devices.map((d) => d.aeTitle));
  const editAc = (pdu: Buffer) => editUserInformation(pdu, { maxPduBytes: cfg.limits.maxPduBytes });
  const plain: PlainListener[] = [];
  const secure: { aeTitle: string; host: string; listener: TlsListener }[] = [];
  const upstream: RunningEdge['upstream'] = [];
  let seq = 0;
  const refusals = refusalLog(logger);
  const refused = refusals.log;

  try {
    // Devices sharing a listen address share one listener; the calling AE picks the device.
    const groups = new Map<string, EdgeDevice[]>();
    for (const d of cfg.devices) {
      // Port 0 (an ephemeral port, for tests) is never shared.
      const k = d.listen.port === 0 ? `${d.aeTitle}|0` : `${d.listen.host}|${d.listen.port}`;
      groups.set(k, [...(groups.get(k) ?? []), d]);
    }
    for (const devices of groups.values()) {
      const byAe = new Map(devices.map((d) => [d.aeTitle, { device: d, allow: allowList(d.allow) }]));
      const decide = (source: string) => (rq: AssociateRq, pdu: Buffer): Verdict => {
        if (rq.calledAe !== cfg.tresor.aeTitle) return { ok: false, reason: 'called-ae-not-tresor', rejection: CALLED_AE_REJECTION };
        const entry = byAe.get(rq.callingAe);
        // One answer for every policy reason, so a scanner learns nothing; the log says which.
        if (!entry) return { ok: false, reason: served.has(rq.callingAe) ? 'calling-ae-not-on-this-listener' : 'calling-ae-not-served', rejection: POLICY_REJECTION };
        if (!allowed(entry.allow, source)) return { ok: false, reason: 'source-address-not-allowed', rejection: POLICY_REJECTION };
        return {
          ok: true,
          forward: editUserInformation(pdu, { maxPduBytes: cfg.limits.maxPduBytes, implementationVersion: edgeVersionName(cfg.name) }),
          connect: () => connectTls(cfg, entry.device),
          log: { direction: 'upstream' },
        };
      };
      const first = devices[0];
      const l = await listenPlain({
        host: first.listen.host,
        port: first.listen.port,
        budget,
        logger,
        onConnection: (socket, source) => {
          relay({ socket, source, limits, connectMs: cfg.timeouts.connectMs, log: logger.child({ assoc: `e${++seq}`, source }), decide: decide(source), editAc, refused });
        },
      });
      plain.push(l);
      upstream.push({ aeTitles: devices.map((d) => d.aeTitle), host: l.host, port: l.port });
    }

    for (const d of cfg.devices) {
      const scp = d.storageScp;
      if (!scp) continue;
      const allow = allowList(scp.allow);
      const listener = await listenTls({
        host: scp.listen.host,
        port: scp.listen.port,
        keyPem: d.keyPem,
        certPem: d.certPem,
        caPem: cfg.tresor.caPem,
        maxConnections: cfg.limits.maxConnections,
        maxConnectionsPerAddress: cfg.limits.maxConnectionsPerAddress,
        handshakeTimeoutMs: cfg.timeouts.handshakeMs,
        logger,
        onConnection: (socket, source) => {
          const decide = (rq: AssociateRq, pdu: Buffer): Verdict => {
            if (rq.calledAe !== d.aeTitle) return { ok: false, reason: 'called-ae-not-this-device', rejection: CALLED_AE_REJECTION };
            if (!allowed(allow, source)) return { ok: false, reason: 'source-address-not-allowed', rejection: POLICY_REJECTION };
            // Only Tresor: its server certificate chains to Tresor's CA, is a server certificate and
            // names Tresor's host (device certificates carry no such name: pki/device-cert.ts).
            const peer = socket.getPeerCertificate();
            const isTresor =
              socket.authorized &&
              peer?.raw !== undefined &&
              (peer.ext_key_usage ?? []).includes(SERVER_AUTH) &&
              tls.checkServerIdentity(cfg.tresor.serverName, peer) === undefined &&
              rq.callingAe === cfg.tresor.aeTitle;
            if (!isTresor) return { ok: false, reason: 'not-tresor', rejection: POLICY_REJECTION };
            return {
              ok: true,
              forward: editUserInformation(pdu, { maxPduBytes: cfg.limits.maxPduBytes }),
              connect: () => connectPlain(scp.target, cfg.timeouts.connectMs),
              log: { direction: 'downstream', device: d.aeTitle },
            };
          };
          relay({ socket, source, limits, connectMs: cfg.timeouts.connectMs, log: logger.child({ assoc: `e${++seq}`, source }), decide, editAc, refused });
        },
      });
      secure.push({ aeTitle: d.aeTitle, host: scp.listen.host, listener });
    }
  } catch (e) {
    refusals.stop();
    await Promise.all([...plain.map((l) => l.close()), ...secure.map((s) => s.listener.close())]);
    throw e;
  }

  const downstream = secure.map((s) => ({ aeTitle: s.aeTitle, host: s.host, port: s.listener.port }));
  logger.info({ edge: cfg.name, tresor: `${cfg.tresor.host}:${cfg.tresor.port}`, upstream, downstream }, 'tresor edge listening');
  return {
    upstream,
    downstream,
    close: async () => {
      refusals.stop();
      await Promise.all([...plain.map((l) => l.close()), ...secure.map((s) => s.listener.close())]);
    },
  };
}

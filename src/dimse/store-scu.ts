// The outgoing association of a C-MOVE (PS3.4 C.4.2.3): Tresor, as a Storage SCU,
// opens TLS to the destination device's registered host and port, presenting its
// own server certificate as client certificate; the destination must present a
// certificate issued by Tresor's CA (and, when the device record pins one, exactly
// that certificate). Built on the same guarded connection as the SCP side.

import tls from 'node:tls';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { fingerprintOfDer } from './association.js';
import { DimseConnection, type DcmMessage, type DcmPresentationContext } from './protocol/connection.js';
import type { GuardLimits } from './protocol/guard.js';
import { socketReady } from '../lib/socket-connect.js';
import { BCP195_CIPHERS } from './protocol/listener.js';
import { PcResult, serviceKind } from './protocol/negotiation.js';
import { AbortReasonCode, PduType } from './protocol/pdu.js';
import type { PkiMaterial } from './services.js';

const { Association } = dimse.association;

export interface StoreScuOptions {
  host: string;
  port: number;
  callingAe: string;
  calledAe: string;
  pki: PkiMaterial;
  fingerprint256?: string;
  /** One presentation context per entry (at most 128). */
  contexts: { abstractSyntax: string; transferSyntaxes: string[] }[];
  limits: GuardLimits;
  connectTimeoutMs: number;
  log: Logger;
}

export class StoreScu extends DimseConnection {
  private settle?: { resolve: () => void; reject: (e: Error) => void };
  private releaseDone?: () => void;

  constructor(socket: tls.TLSSocket, limits: GuardLimits, log: Logger) {
    super(socket, 'requestor', limits, log);
  }

  /** Sends the A-ASSOCIATE-RQ and resolves once accepted. */
  associate(o: StoreScuOptions): Promise<void> {
    const a = new Association(o.callingAe, o.calledAe);
    a.setMaxPduLength(o.limits.maxPduBytes);
    for (const c of o.contexts.slice(0, 128)) {
      const id = a.addPresentationContext(c.abstractSyntax);
      for (const t of c.transferSyntaxes) a.addTransferSyntaxToPresentationContext(id, t);
    }
    this.net.association = a;
    this.net.logId = o.calledAe;
    const p = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.sendAssociationRequest(a);
    return p;
  }

  protected async onPdu(type: number, pdu: Buffer): Promise<void> {
    switch (type) {
      case PduType.AssociateAc: {
        await this.dcmjsProcessPdu(pdu);
        if (this.guard.closed) return;
        const a = this.net.association!;
        for (const { id, context } of (a as unknown as { presentationContexts: { id: number; context: DcmPresentationContext }[] }).presentationContexts) {
          const result = context.getResult();
          this.pcs.set(id, {
            id,
            abstractSyntax: context.getAbstractSyntaxUid(),
            proposed: [],
            result: result === PcResult.Accept ? PcResult.Accept : result === 255 ? PcResult.NoReason : result,
            transferSyntax: result === PcResult.Accept ? context.getAcceptedTransferSyntaxUid() : undefined,
            kind: serviceKind(context.getAbstractSyntaxUid()),
            requestorIsScp: false,
          });
        }
        // What the acceptor takes (0 = no limit), never more than our own maximum.
        const peerMax = a.getMaxPduLength();
        this.sendPduMax = peerMax === 0 ? this.sendPduMax : Math.min(peerMax, this.sendPduMax);
        a.setMaxPduLength(this.sendPduMax);
        this.guard.established();
        this.settle?.resolve();
        return;
      }
      case PduType.AssociateRj:
        this.settle?.reject(new Error('association rejected by the destination'));
        this.guard.close('released', 'rejected by destination');
        return;
      case PduType.PData:
        return this.onPData(pdu);
      case PduType.ReleaseRp:
        this.guard.close('released');
        this.releaseDone?.();
        return;
      default:
        return this.guard.abort('protocol-violation', `unexpected PDU type ${type}`, AbortReasonCode.UnexpectedPdu);
    }
  }

  protected onClosed(): void {
    this.settle?.reject(new Error('connection to the destination closed'));
    this.releaseDone?.();
  }

  protected async onRequest(_pc: unknown, _request: DcmMessage): Promise<void> {
    // A storage SCP has nothing to ask us on this association.
    this.guard.abort('protocol-violation', 'request from the move destination', AbortReasonCode.UnexpectedPdu);
  }

  /** A-RELEASE (PS3.8 §7.2), then the socket is closed whatever happens. */
  async release(timeoutMs: number): Promise<void> {
    if (this.guard.closed) return;
    const done = new Promise<void>((resolve) => {
      this.releaseDone = resolve;
      setTimeout(resolve, timeoutMs).unref();
    });
    this.guard.releasing();
    this.sendAssociationReleaseRequest();
    await done;
    if (!this.guard.closed) this.guard.close('released', 'no A-RELEASE-RP in time');
  }

  abort(): void {
    this.guard.abort('local-abort', 'move ended', AbortReasonCode.NotSpecified, 0);
  }
}

/** TCP + TLS + A-ASSOCIATE to a move destination, within `connectTimeoutMs`. */
export async function connectStoreScu(o: StoreScuOptions): Promise<StoreScu> {
  const s = tls.connect({
    host: o.host,
    port: o.port,
    key: o.pki.serverKeyPem,
    cert: o.pki.serverCertPem,
    ca: o.pki.caCertPem,
    minVersion: 'TLSv1.2',
    ciphers: BCP195_CIPHERS,
    rejectUnauthorized: true,
    // Devices are identified by their certificate, not by a host name in it: the registered
    // certificate when the record pins one, else a certificate of Tresor's CA for that AE title.
    checkServerIdentity: (_host, cert) => {
      if (o.fingerprint256) return fingerprintOfDer(cert.raw) === o.fingerprint256 ? undefined : new Error('destination certificate is not the registered one');
      const cn = cert.subject?.CN;
      return (Array.isArray(cn) ? cn : [cn]).includes(o.calledAe) ? undefined : new Error('destination certificate is not issued to its AE title');
    },
  });
  const socket = await socketReady(s, 'secureConnect', {
    timeoutMs: o.connectTimeoutMs,
    onTimeout: () => new Error('connection to the destination timed out'),
    onError: (e) => new Error(`cannot reach the destination (${e.code ?? e.message})`),
  });
  const scu = new StoreScu(socket, { ...o.limits, artimMs: o.connectTimeoutMs }, o.log);
  try {
    await scu.associate(o);
  } catch (e) {
    if (!scu.guard.closed) scu.guard.close('local-abort', 'association failed');
    throw e;
  }
  return scu;
}

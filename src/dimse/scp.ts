// The acceptor side of an association: A-ASSOCIATE-RQ → authentication
// (association.ts) → A-ASSOCIATE-AC or the uniform A-ASSOCIATE-RJ; then requests
// are dispatched to one handler module per service, each wrapped so that an
// exception becomes a failure status (README.md defect 7), never a crash.

import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import dimse from 'dcmjs-dimse';
import { buildPart10Header } from '../core/dicom/part10.js';
import { isValidUid } from '../core/dicom/uids.js';
import { recordAssociation, recordSecurityAlert } from '../core/audit-association.js';
import { isTresorError, unauthenticated } from '../core/errors.js';
import type { HeldCredential, RecheckResult } from '../core/identity/index.js';
import type { IngestTransfer } from '../core/ingest.js';
import { principalLabel, type Principal } from '../core/principal.js';
import { AUTH_REJECTION, authenticateAssociation, uniformDelay, type AssociationDecision } from './association.js';
import { DimseConnection, type DcmMessage, type DcmPresentationContext } from './protocol/connection.js';
import { Exchange, SERVICE_BY_FIELD, type AssociationScope } from './exchange.js';
import type { CloseReason } from './protocol/guard.js';
import { edgeOf } from '../edge/announce.js';
import { handleEcho } from './handlers/echo.js';
import { handleFind } from './handlers/find.js';
import { handleGet } from './handlers/get.js';
import { handleMove } from './handlers/move.js';
import { handleStore } from './handlers/store.js';
import { negotiateContexts, PcResult, type NegotiatedContext, type ServiceKind } from './protocol/negotiation.js';
import { AbortReasonCode, AbortSourceCode, encodeAssociateRj, encodeReleaseRp, parseAssociateRq, PduError, PduType, RejectCode, type AssociateRq } from './protocol/pdu.js';
import type { DimseDeps, DimseTuning } from './services.js';
import { DimseStatus, statusForError } from './status.js';
import { Part10TempWriter } from './store-writer.js';

const { Association, PresentationContext } = dimse.association;

/** dcmtk and most peers never go below 4 KiB (ASC_MINIMUMPDUSIZE); tinier PDUs only cost us CPU. */
const MIN_PEER_PDU = 4096;

const KIND_BY_FIELD: Record<number, ServiceKind> = {
  0x0001: 'storage',
  0x0020: 'find',
  0x0010: 'get',
  0x0021: 'move',
  0x0030: 'verification',
};
const C_CANCEL_RQ = 0x0fff;

export type ResolvedDeps = DimseDeps & { tuning: DimseTuning };

export class TresorScp extends DimseConnection {
  private scope?: AssociationScope;
  private readonly assocId = randomUUID().slice(0, 8);
  private active?: { ex: Exchange; done: Promise<void> };
  private readonly storeWriters = new WeakMap<object, Part10TempWriter>();
  /** A C-STORE's re-check, started when its data set begins to arrive (see createStoreWritableStream). */
  private readonly earlyRechecks = new WeakMap<object, Promise<RecheckResult>>();
  private rqSummary: Record<string, unknown> = {};
  /** All C-STOREs of this association: one `store` row when it ends (PS3.15 A.5.3.10). */
  private transfer?: IngestTransfer;
  private echoes = 0;
  /** The association's `association` row: true once written, false when it could not be (the association is then aborted). */
  private accepted: Promise<boolean> = Promise.resolve(false);
  /** The credentials the association was accepted with: re-checked before every request. */
  private held?: HeldCredential;

  constructor(
    socket: TLSSocket,
    private readonly source: string,
    private readonly deps: ResolvedDeps,
    /** Moves the connection to the authenticated pool (listener.ts); false = association limits full. */
    private readonly admit: () => boolean = () => true,
  ) {
    super(
      socket,
      'acceptor',
      {
        maxPduBytes: deps.config.limits.maxPduBytes,
        artimMs: deps.tuning.artimMs,
        idleMs: deps.tuning.idleMs,
        pduMs: deps.tuning.pduMs,
        writeStallMs: deps.tuning.writeStallMs,
      },
      deps.logger.child({ assoc: '', source }),
    );
    this.log = deps.logger.child({ assoc: this.assocId, source });
  }

  protected async onPdu(type: number, pdu: Buffer): Promise<void> {
    switch (type) {
      case PduType.AssociateRq:
        return this.onAssociateRq(pdu);
      case PduType.PData:
        return this.onPData(pdu);
      case PduType.ReleaseRq:
        return this.onReleaseRq();
      default:
        return this.guard.abort('protocol-violation', `unexpected PDU type ${type}`, AbortReasonCode.UnexpectedPdu);
    }
  }

  /** The association's one row (core/audit-association.ts). */
  private audit(outcome: 'success' | 'failure' | 'denied', details: Record<string, unknown>, principal: Principal | null | undefined = this.scope?.principal): Promise<void> {
    return recordAssociation(this.deps.audit, { outcome, principal, source: this.source, association: this.assocId, details });
  }

  /** Writes the association's store transfer row, once; never throws. */
  private endTransfer(ended: string): Promise<void> {
    return this.transfer?.end({ association: this.assocId, ended }) ?? Promise.resolve();
  }

  private async onAssociateRq(pdu: Buffer): Promise<void> {
    const startedAt = Date.now();
    let rq: AssociateRq;
    let decision: AssociationDecision;
    try {
      rq = parseAssociateRq(pdu.subarray(6));
    } catch (e) {
      const reason = e instanceof PduError ? e.reason : 'malformed';
      this.log.info({ reason }, 'dimse association request malformed');
      void this.audit('denied', { reason: 'malformed-request', detail: reason }).catch(() => undefined);
      await uniformDelay(startedAt, this.deps.tuning.rejectDelayMs);
      return this.reject({ result: RejectCode.ResultPermanent, source: RejectCode.SourceAcse, reason: RejectCode.NoReasonGiven });
    }
    this.rqSummary = { callingAe: rq.callingAe, calledAe: rq.calledAe };
    try {
      decision = await authenticateAssociation({
        rq,
        socket: this.guard.socket as TLSSocket,
        source: this.source,
        aeTitle: this.deps.config.aeTitle,
        requireBoth: this.deps.config.dimseRequireBoth,
        authenticator: this.deps.authenticator,
      });
      if (decision.ok) {
        this.held = { principal: decision.principal, ...(decision.certificate ? { certificate: decision.certificate } : {}) };
        if (decision.principal.kind === 'user') {
          // The user's token generation as of now: a password change later ends the association.
          const now = await this.deps.authenticator.recheck(this.held);
          if (now.ok) this.held.generation = now.generation;
          else decision = { ok: false, reason: `revoked-${now.reason}`, rejection: AUTH_REJECTION, audit: { ...decision.audit, reason: `revoked-${now.reason}` } };
        }
      }
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'dimse authenticator failed');
      decision = isTresorError(e) && e.kind === 'unavailable'
        ? // The database (or another dependency) is down or restarting: nothing is wrong with
          // the peer. PS3.8 §9.3.4: rejected-transient, ACSE service-provider (presentation)
          // reason "temporary-congestion" — the SCU should try again later.
          { ok: false, reason: 'authenticator-unavailable', rejection: { result: RejectCode.ResultTransient, source: RejectCode.SourcePresentation, reason: RejectCode.TemporaryCongestion }, audit: { ...this.rqSummary, reason: 'authenticator-unavailable' } }
        : // Any other authenticator failure looks like any other refusal to the peer.
          { ok: false, reason: 'authenticator-error', rejection: { result: RejectCode.ResultPermanent, source: RejectCode.SourceServiceUser, reason: RejectCode.CallingAeNotRecognized }, audit: { ...this.rqSummary, reason: 'authenticator-error' } };
    }
    if (decision.ok && rq.maxPduLength !== 0 && rq.maxPduLength < MIN_PEER_PDU) {
      decision = { ok: false, reason: 'max-pdu-too-small', rejection: { result: RejectCode.ResultPermanent, source: RejectCode.SourcePresentation, reason: RejectCode.LocalLimitExceeded }, audit: { ...decision.audit, reason: 'max-pdu-too-small' } };
    }

    // Came through `tresor edge`: self-declared by the edge, recorded for visibility only (edge/announce.ts).
    const edge = edgeOf(rq.implementationVersion);
    if (edge) decision.audit.edge = edge;
    if (decision.ok && !this.guard.closed && !this.admit()) {
      // PS3.8 §9.3.4: transient, service provider (presentation), local limit exceeded — try later.
      decision = { ok: false, reason: 'association-limit', rejection: { result: RejectCode.ResultTransient, source: RejectCode.SourcePresentation, reason: RejectCode.LocalLimitExceeded }, audit: { ...decision.audit, reason: 'association-limit' } };
    }
    if (!decision.ok) {
      this.log.info({ callingAe: rq.callingAe, reason: decision.reason }, 'dimse association rejected');
      void this.audit('denied', decision.audit, null).catch((e) => this.log.error({ err: String(e) }, 'audit failed'));
      await uniformDelay(startedAt, this.deps.tuning.rejectDelayMs);
      return this.reject(decision.rejection);
    }
    if (this.guard.closed) return;

    const principal = decision.principal;
    const contexts = negotiateContexts(rq);
    this.scope = {
      principal,
      callingAe: rq.callingAe,
      source: this.source,
      associationId: this.assocId,
      log: this.log.child({ callingAe: rq.callingAe, principal: principalLabel(principal) }),
      deps: this.deps,
      storeTransfer: () => (this.transfer ??= this.deps.ingest.openTransfer(principal, { via: 'dimse', source: rq.callingAe, details: { calledAe: rq.calledAe } })),
      echoed: () => void this.echoes++,
    };
    this.log = this.scope.log;
    // The association's row is written while the A-ASSOCIATE-AC goes out, not before it
    // (issue 13: its transaction was ~2.5 ms of every association's set-up). Still no
    // audit, no service: every request but C-ECHO, and the release, wait for the row, and
    // when it cannot be written the association is aborted before anything is touched.
    this.accepted = this.audit('success', { ...decision.audit, contexts: contexts.filter((c) => c.result === PcResult.Accept).length }).then(
      () => true,
      (e) => {
        this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'audit failed; association aborted');
        this.guard.abort('local-abort', 'audit-unavailable', AbortReasonCode.NotSpecified, AbortSourceCode.ServiceUser);
        return false;
      },
    );

    const ourMax = this.deps.config.limits.maxPduBytes;
    const a = new Association(rq.callingAe, rq.calledAe);
    a.setMaxPduLength(ourMax);
    const rolesAnswered = new Set<string>();
    const list = (a as unknown as { presentationContexts: { id: number; context: DcmPresentationContext }[] }).presentationContexts;
    for (const pc of contexts) {
      this.pcs.set(pc.id, pc);
      const c = new PresentationContext(pc.id, pc.abstractSyntax);
      for (const t of pc.proposed) c.addTransferSyntaxUid(t);
      c.setResult(pc.result, pc.result === PcResult.Accept ? pc.transferSyntax : undefined);
      // One role selection answer per abstract syntax (PS3.7 §D.3.3.4), echoing what was proposed.
      const role = rq.roles.get(pc.abstractSyntax);
      if (role && pc.result === PcResult.Accept && !rolesAnswered.has(pc.abstractSyntax)) {
        rolesAnswered.add(pc.abstractSyntax);
        c.setUserRole(role.scu);
        c.setProviderRole(role.scp);
      }
      list.push({ id: pc.id, context: c });
    }
    if (decision.identityConfirmed) {
      // PS3.7 §D.3.3.7.2: for username/passcode and JWT the server response is empty.
      a.setNegotiateUserIdentityServerResponse(true);
      a.setUserIdentityServerResponse('');
    }
    // We never negotiate asynchronous operations: the AC has no 0x53 item, so the window is 1/1.
    this.net.association = a;
    this.net.logId = rq.callingAe;
    this.sendAssociationAccept();
    // From here on we send at most what the peer accepts (0 = no limit) and never more than our own maximum.
    this.sendPduMax = rq.maxPduLength === 0 ? ourMax : Math.min(rq.maxPduLength, ourMax);
    a.setMaxPduLength(this.sendPduMax);
    this.guard.established();
    this.log.info({ via: decision.via, contexts: contexts.filter((c) => c.result === PcResult.Accept).length, maxPdu: rq.maxPduLength }, 'dimse association accepted');
  }

  private reject(r: { result: number; source: number; reason: number }): void {
    if (this.guard.closed) return;
    this.guard.write(encodeAssociateRj(r.result, r.source, r.reason));
    this.guard.close('released', 'association rejected');
  }

  private async onReleaseRq(): Promise<void> {
    // An operation still running (a peer that did not wait) finishes first (PS3.7 §7.2).
    if (this.active) await this.active.done;
    if (!(await this.accepted) || this.guard.closed) return;
    // The transfer's row is written before the peer hears the release (an SCU that exits
    // then finds the trail complete).
    await this.endTransfer('released');
    // Ten fixed bytes, written here: dcmjs-dimse's encoder built them through its PDU
    // classes and logger for ~0.5 ms of CPU per association (issue 13, C-ECHO profile).
    this.guard.write(encodeReleaseRp());
    this.guard.close('released');
  }

  protected onClosed(reason: CloseReason, detail?: string): void {
    if (this.active) this.active.ex.cancelled = true;
    const level = reason === 'released' || reason === 'peer-closed' ? 'info' : 'warn';
    this.log[level]({ reason, detail, echoes: this.echoes }, 'dimse association closed');
    // Aborted or cut off: what was stored so far is still one transfer, with how it ended.
    void this.endTransfer(reason);
    const audited = reason === 'protocol-violation' || reason === 'write-stall' || reason === 'local-abort' || reason === 'revoked';
    // No A-ASSOCIATE-RQ ever came: nobody to name, so counted and audited rate-limited (issue 14 "Also").
    if (!audited && !this.scope && this.rqSummary.callingAe === undefined && reason !== 'server-shutdown') {
      this.deps.onAnonymousRefusal?.({ reason: 'no-association', address: this.source, code: reason });
    }
    if (audited) {
      // Before acceptance this is the association's one (refusing) row; after, an alert.
      if (!this.scope) void this.audit('denied', { ...this.rqSummary, reason, detail }).catch(() => undefined);
      else void recordSecurityAlert(this.deps.audit, { principal: this.scope.principal, source: this.source, association: this.assocId, details: { ...this.rqSummary, reason, detail } });
    }
  }

  /**
   * Before every request: do the credentials the association was accepted with still
   * hold? (core/identity/recheck.ts: the account, its roles, the certificate, the
   * password.) If not, the request is refused with 0124H "Refused: Not Authorized"
   * (PS3.7 Annex C, general failure status) so that the peer's log says why, and the
   * association is then aborted: an A-ABORT from the service user (PS3.8 §7.3.1, source 0;
   * the reason field is not significant for that source, §9.3.8). Not an A-RELEASE: it
   * waits for the peer's answer (PS3.8 §7.2.2), which a peer that keeps sending need not
   * give soon, and SCUs rarely expect a release from the acceptor; carrying on would let
   * the next request in under credentials that no longer hold. A gain of rights just
   * updates the principal for this and later requests.
   */
  private async stillAuthorized(ex: Exchange, service: string): Promise<boolean> {
    const scope = this.scope!;
    let reason: string;
    try {
      const now = await (this.earlyRechecks.get(ex.request) ?? this.deps.authenticator.recheck(this.held!));
      if (now.ok) {
        scope.principal = now.principal;
        this.held = { ...this.held!, principal: now.principal };
        return true;
      }
      reason = now.reason;
    } catch (e) {
      // Fail closed, but the association may live: a database hiccup is not a revocation.
      scope.log.error({ op: service, err: e instanceof Error ? e.message : String(e) }, 'dimse principal re-check failed');
      await ex.fail({ status: DimseStatus.OutOfResources, comment: 'recheck-unavailable' }).catch(() => undefined);
      return false;
    }
    scope.log.warn({ op: service, reason }, 'dimse request refused: credentials revoked; aborting the association');
    await ex.fail(statusForError(unauthenticated('credentials-revoked'), ex.service)).catch(() => undefined);
    this.guard.abort('revoked', reason, AbortReasonCode.NotSpecified, AbortSourceCode.ServiceUser);
    return false;
  }

  /** dcmjs-dimse extension point: where the C-STORE data set goes (never memory). */
  createStoreWritableStream(dcmPc: DcmPresentationContext, request: unknown): Writable {
    const rq = request as DcmMessage;
    const pc = this.pcs.get(dcmPc.getPresentationContextId());
    const sopClassUid = rq.getAffectedSopClassUid();
    const sopInstanceUid = rq.getAffectedSopInstanceUid();
    let refused: string | undefined;
    if (!pc || pc.kind !== 'storage' || !pc.transferSyntax) refused = 'sop-class-not-supported';
    else if (sopClassUid !== pc.abstractSyntax) refused = 'sop-class-mismatch';
    else if (!isValidUid(sopInstanceUid)) refused = 'invalid-sop-instance-uid';
    const file = path.join(this.deps.config.dataDir, 'tmp', `dimse-${randomUUID()}.part`);
    // No Source AE Title in the header: the core detects duplicates by the hash of the whole
    // file, so the header must depend on the object only (the audit trail records the sender).
    const header = refused ? undefined : buildPart10Header({ transferSyntaxUid: pc!.transferSyntax!, sopClassUid, sopInstanceUid });
    // The core looks the object up from its first bytes while the rest arrives (issue 13).
    const scope = this.scope;
    const onHead = scope && !refused ? (head: Buffer) => scope.storeTransfer().lookAhead(head) : undefined;
    const writer = new Part10TempWriter(file, header, this.deps.config.limits.maxObjectBytes, refused, onHead);
    this.storeWriters.set(rq, writer);
    // The request's re-check (stillAuthorized) runs while its data set arrives, not after:
    // one database round trip off every C-STORE's answer (issue 13; PostgreSQL only, see
    // DimseDeps). It is still this request's own, made after the request began; never
    // reused for another.
    if (this.held && this.deps.recheckWhileReceiving) {
      const early = this.deps.authenticator.recheck(this.held);
      early.catch(() => undefined); // read in stillAuthorized
      this.earlyRechecks.set(rq, early);
    }
    return writer;
  }

  protected async onRequest(pc: NegotiatedContext, request: DcmMessage): Promise<void> {
    const scope = this.scope;
    if (!scope) return this.guard.abort('protocol-violation', 'request before association', AbortReasonCode.UnexpectedPdu);
    const field = request.getCommandFieldType();

    if (field === C_CANCEL_RQ) {
      // PS3.7 §9.3.2.3: cancels the C-FIND/C-GET/C-MOVE with that message ID, if still running.
      const id = request.getCommandDataset().getElement('MessageIDBeingRespondedTo') as unknown as number;
      if (this.active && this.active.ex.messageId === id) this.active.ex.cancelled = true;
      return;
    }
    // We granted one outstanding operation (no asynchronous operations window, PS3.7 §D.3.3.3).
    if (this.active) return this.guard.abort('protocol-violation', 'second request while one is outstanding', AbortReasonCode.UnexpectedPdu);

    const service = SERVICE_BY_FIELD[field];
    if (!service) {
      // N-services and anything else: not offered on any context we accept.
      this.log.warn({ commandField: field }, 'dimse unsupported command');
      return this.guard.abort('protocol-violation', `unsupported command 0x${field.toString(16)}`, AbortReasonCode.UnexpectedPduParameter);
    }
    const writer = field === 0x0001 ? this.storeWriters.get(request) : undefined;
    let finished = false;
    const ex = new Exchange(scope, pc, request, this, () => {
      finished = true;
      if (this.active?.ex === ex) this.active = undefined;
    });
    if (KIND_BY_FIELD[field] !== pc.kind) {
      await writer?.discard();
      return ex.fail({ status: DimseStatus.SopClassNotSupported, comment: 'wrong-presentation-context' });
    }
    const authorized = this.stillAuthorized(ex, service);
    // C-ECHO touches no data and reveals nothing (PS3.4 Annex A): it need not wait for the
    // association's row; every other request does (see onAssociateRq).
    const recorded = service === 'C-ECHO' || (await this.accepted);
    if (!(await authorized) || !recorded || this.guard.closed) return writer?.discard();
    const run = async (): Promise<void> => {
      try {
        switch (service) {
          case 'C-ECHO':
            return await handleEcho(ex);
          case 'C-STORE':
            return await handleStore(ex, writer);
          case 'C-FIND':
            return await handleFind(ex);
          case 'C-GET':
            return await handleGet(ex, this);
          case 'C-MOVE':
            return await handleMove(ex);
        }
      } catch (e) {
        scope.log.error({ op: service, err: e instanceof Error ? e.message : String(e) }, 'dimse handler failed');
        if (!ex.finalSent && !this.guard.closed) await ex.fail(statusForError(e, service)).catch(() => undefined);
      } finally {
        if (!finished && this.active?.ex === ex) this.active = undefined;
      }
    };
    if (service === 'C-FIND' || service === 'C-GET' || service === 'C-MOVE') {
      // Runs beside the PDU loop, which must keep reading: C-CANCEL, and the C-STORE-RSPs of C-GET sub-operations.
      const done = this.guard.track(run());
      this.active = { ex, done };
      void done.catch(() => undefined);
      return;
    }
    await run();
  }
}

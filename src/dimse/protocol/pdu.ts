// Upper-layer PDUs (PS3.8 §9.3): strict parsing of what we must judge ourselves
// (the A-ASSOCIATE-RQ, P-DATA-TF framing) and encoding of the few PDUs we send
// without dcmjs-dimse (A-ABORT before an association exists, A-ASSOCIATE-RJ).
// dcmjs-dimse's own A-ASSOCIATE-RQ reader renumbers presentation contexts that
// arrive out of order and mangles binary user-identity fields (see README.md),
// so the request is parsed here and the result is handed to its Association.

export const PduType = {
  AssociateRq: 0x01,
  AssociateAc: 0x02,
  AssociateRj: 0x03,
  PData: 0x04,
  ReleaseRq: 0x05,
  ReleaseRp: 0x06,
  Abort: 0x07,
} as const;

/** PS3.8 §9.3.8 Table 9-26. */
export const AbortSourceCode = { ServiceUser: 0, ServiceProvider: 2 } as const;
export const AbortReasonCode = {
  NotSpecified: 0,
  UnrecognizedPdu: 1,
  UnexpectedPdu: 2,
  UnrecognizedPduParameter: 4,
  UnexpectedPduParameter: 5,
  InvalidPduParameter: 6,
} as const;

/** PS3.8 §9.3.4 Table 9-21. */
export const RejectCode = {
  ResultPermanent: 1,
  ResultTransient: 2,
  SourceServiceUser: 1,
  SourceAcse: 2,
  SourcePresentation: 3,
  // source 1
  NoReasonGiven: 1,
  ApplicationContextNotSupported: 2,
  CallingAeNotRecognized: 3,
  CalledAeNotRecognized: 7,
  // source 2
  ProtocolVersionNotSupported: 2,
  // source 3
  TemporaryCongestion: 1,
  LocalLimitExceeded: 2,
} as const;

export const APPLICATION_CONTEXT_NAME = '1.2.840.10008.3.1.1.1';

/** A-ASSOCIATE-RQ bodies larger than this are refused (128 presentation contexts with a JWT fit easily). */
export const MAX_ASSOCIATE_PDU_BYTES = 128 * 1024;

export class PduError extends Error {
  constructor(
    readonly reason: string,
    readonly abortReason: number = AbortReasonCode.InvalidPduParameter,
  ) {
    super(reason);
    this.name = 'PduError';
  }
}

export function encodeAbort(source: number, reason: number): Buffer {
  return Buffer.from([PduType.Abort, 0, 0, 0, 0, 4, 0, 0, source, reason]);
}

/** PS3.8 §9.3.7: A-RELEASE-RP, type 06H, length 4, four reserved bytes. */
export function encodeReleaseRp(): Buffer {
  return Buffer.from([PduType.ReleaseRp, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
}

export function encodeAssociateRj(result: number, source: number, reason: number): Buffer {
  return Buffer.from([PduType.AssociateRj, 0, 0, 0, 0, 4, 0, result, source, reason]);
}

export interface ProposedContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface UserIdentityItem {
  /** PS3.7 D.3.3.7.1: 1 username, 2 username+passcode, 3 Kerberos, 4 SAML, 5 JWT. */
  type: number;
  positiveResponseRequested: boolean;
  primary: Buffer;
  secondary: Buffer;
}

export interface AssociateRq {
  protocolVersion: number;
  calledAe: string;
  callingAe: string;
  applicationContext: string;
  contexts: ProposedContext[];
  /** Largest P-DATA-TF the requestor accepts; 0 = no limit (PS3.8 §D.1). */
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersion?: string;
  asyncOps?: { invoked: number; performed: number };
  /** SCP/SCU role selection by abstract syntax (PS3.7 §D.3.3.4). */
  roles: Map<string, { scu: boolean; scp: boolean }>;
  userIdentity?: UserIdentityItem;
}

class Reader {
  private off = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly end: number = buf.length,
    start = 0,
  ) {
    this.off = start;
  }
  get offset(): number {
    return this.off;
  }
  remaining(): number {
    return this.end - this.off;
  }
  need(n: number, what: string): void {
    if (n < 0 || this.off + n > this.end) throw new PduError(`truncated ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.off++];
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
  sub(n: number, what: string): Reader {
    this.need(n, what);
    const r = new Reader(this.buf, this.off + n, this.off);
    this.off += n;
    return r;
  }
}

/** AE titles: 16 bytes, leading and trailing spaces not significant (PS3.8 §9.3.2, PS3.5 §6.2 AE). */
function aeTitle(raw: Buffer, what: string): string {
  const s = raw.toString('latin1').replace(/\0+$/, '').trim();
  if (s.length === 0 || !/^[\x20-\x5b\x5d-\x7e]+$/.test(s)) throw new PduError(`invalid ${what}`, AbortReasonCode.InvalidPduParameter);
  return s;
}

/** UIDs in PDUs may be padded with a NUL (PS3.8 §9.3.2.2, Annex F). */
function uid(raw: Buffer, what: string): string {
  const s = raw.toString('latin1').replace(/[\0 ]+$/, '');
  if (s.length === 0 || s.length > 64 || !/^[0-9]+(\.[0-9]+)*$/.test(s)) throw new PduError(`invalid ${what}`);
  return s;
}

/** Parses the body (after the 6-byte header) of an A-ASSOCIATE-RQ (PS3.8 §9.3.2). */
export function parseAssociateRq(body: Buffer): AssociateRq {
  const r = new Reader(body);
  const protocolVersion = r.u16('protocol version');
  r.bytes(2, 'reserved');
  const calledAe = aeTitle(r.bytes(16, 'called AE'), 'called AE title');
  const callingAe = aeTitle(r.bytes(16, 'calling AE'), 'calling AE title');
  r.bytes(32, 'reserved');

  let applicationContext: string | undefined;
  const contexts: ProposedContext[] = [];
  const ids = new Set<number>();
  let userInfoSeen = false;
  const out: Omit<AssociateRq, 'protocolVersion' | 'calledAe' | 'callingAe' | 'applicationContext' | 'contexts'> = {
    maxPduLength: 0,
    implementationClassUid: '',
    roles: new Map(),
  };

  while (r.remaining() > 0) {
    const type = r.u8('item type');
    r.u8('reserved');
    const len = r.u16('item length');
    const item = r.sub(len, 'item');
    if (type === 0x10) {
      if (applicationContext !== undefined) throw new PduError('two application context items', AbortReasonCode.UnexpectedPduParameter);
      applicationContext = uid(item.bytes(len, 'application context'), 'application context name');
    } else if (type === 0x20) {
      const id = item.u8('presentation context id');
      item.bytes(3, 'reserved');
      // PS3.8 §9.3.2.2: odd integers 1–255, unique within the association.
      if (id % 2 === 0 || ids.has(id)) throw new PduError('invalid or duplicate presentation context id');
      ids.add(id);
      let abstractSyntax: string | undefined;
      const transferSyntaxes: string[] = [];
      while (item.remaining() > 0) {
        const st = item.u8('sub-item type');
        item.u8('reserved');
        const sl = item.u16('sub-item length');
        const value = item.bytes(sl, 'sub-item');
        if (st === 0x30) {
          if (abstractSyntax !== undefined) throw new PduError('two abstract syntaxes in one presentation context');
          abstractSyntax = uid(value, 'abstract syntax');
        } else if (st === 0x40) {
          transferSyntaxes.push(uid(value, 'transfer syntax'));
        } else {
          throw new PduError('unknown presentation context sub-item', AbortReasonCode.UnrecognizedPduParameter);
        }
      }
      if (abstractSyntax === undefined || transferSyntaxes.length === 0) throw new PduError('incomplete presentation context');
      contexts.push({ id, abstractSyntax, transferSyntaxes });
      if (contexts.length > 128) throw new PduError('more than 128 presentation contexts');
    } else if (type === 0x50) {
      if (userInfoSeen) throw new PduError('two user information items', AbortReasonCode.UnexpectedPduParameter);
      userInfoSeen = true;
      parseUserInformation(item, out);
    } else {
      throw new PduError(`unknown item type 0x${type.toString(16)}`, AbortReasonCode.UnrecognizedPduParameter);
    }
  }
  if (applicationContext === undefined) throw new PduError('no application context item');
  if (!userInfoSeen) throw new PduError('no user information item');
  return { protocolVersion, calledAe, callingAe, applicationContext, contexts, ...out };
}

function parseUserInformation(r: Reader, out: Omit<AssociateRq, 'protocolVersion' | 'calledAe' | 'callingAe' | 'applicationContext' | 'contexts'>): void {
  let maxLengthSeen = false;
  while (r.remaining() > 0) {
    const type = r.u8('user item type');
    r.u8('reserved');
    const len = r.u16('user item length');
    const it = r.sub(len, 'user item');
    switch (type) {
      case 0x51: // Maximum length (PS3.8 §D.1)
        if (len !== 4) throw new PduError('bad maximum length item');
        out.maxPduLength = it.u32('maximum length');
        maxLengthSeen = true;
        break;
      case 0x52: // Implementation class UID (PS3.7 §D.3.3.2)
        out.implementationClassUid = uid(it.bytes(len, 'implementation class uid'), 'implementation class UID');
        break;
      case 0x53: // Asynchronous operations window (PS3.7 §D.3.3.3)
        if (len !== 4) throw new PduError('bad asynchronous operations item');
        out.asyncOps = { invoked: it.u16('invoked'), performed: it.u16('performed') };
        break;
      case 0x54: {
        // SCP/SCU role selection (PS3.7 §D.3.3.4)
        const ul = it.u16('uid length');
        const as = uid(it.bytes(ul, 'role abstract syntax'), 'role selection abstract syntax');
        const scu = it.u8('scu role') === 1;
        const scp = it.u8('scp role') === 1;
        if (it.remaining() !== 0) throw new PduError('bad role selection item');
        out.roles.set(as, { scu, scp });
        break;
      }
      case 0x55: // Implementation version name
        if (len > 16) throw new PduError('implementation version name too long');
        out.implementationVersion = it.bytes(len, 'implementation version').toString('latin1').trim();
        break;
      case 0x58: {
        // User identity (PS3.7 §D.3.3.7.1): kept as raw bytes, never trimmed.
        if (out.userIdentity) throw new PduError('two user identity items', AbortReasonCode.UnexpectedPduParameter);
        const idType = it.u8('user identity type');
        const positiveResponseRequested = it.u8('positive response requested') === 1;
        const pl = it.u16('primary field length');
        const primary = Buffer.from(it.bytes(pl, 'primary field'));
        const sl = it.u16('secondary field length');
        const secondary = Buffer.from(it.bytes(sl, 'secondary field'));
        if (it.remaining() !== 0) throw new PduError('bad user identity item');
        out.userIdentity = { type: idType, positiveResponseRequested, primary, secondary };
        break;
      }
      default:
        // 0x56 SOP class extended, 0x57 common extended and unknown items: ignored (PS3.7 §D.3.3).
        break;
    }
  }
  if (!maxLengthSeen) throw new PduError('no maximum length item');
}

export interface Pdv {
  pcId: number;
  command: boolean;
  last: boolean;
  /** The PDV including its 6-byte item header (length, context id, control header). */
  item: Buffer;
  valueLength: number;
}

/** Splits a P-DATA-TF body into PDVs (PS3.8 §9.3.5.1), refusing anything that does not add up. */
export function parsePdvs(body: Buffer): Pdv[] {
  const pdvs: Pdv[] = [];
  let off = 0;
  if (body.length === 0) throw new PduError('empty P-DATA-TF');
  while (off < body.length) {
    if (off + 6 > body.length) throw new PduError('truncated PDV header');
    const len = body.readUInt32BE(off);
    if (len < 2 || off + 4 + len > body.length) throw new PduError('bad PDV length');
    const pcId = body[off + 4];
    const mch = body[off + 5];
    if (mch & 0xfc) throw new PduError('bad message control header');
    pdvs.push({ pcId, command: (mch & 1) !== 0, last: (mch & 2) !== 0, item: body.subarray(off, off + 4 + len), valueLength: len - 2 });
    off += 4 + len;
  }
  return pdvs;
}

/** Wraps PDV items (with their headers) into one P-DATA-TF PDU. */
export function encodePData(items: Buffer[]): Buffer {
  const len = items.reduce((n, b) => n + b.length, 0);
  const head = Buffer.alloc(6);
  head[0] = PduType.PData;
  head.writeUInt32BE(len, 2);
  return Buffer.concat([head, ...items], 6 + len);
}

/** One PDV item header + value. */
export function pdvItem(pcId: number, command: boolean, last: boolean, value: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(value.length + 2, 0);
  head[4] = pcId;
  head[5] = (command ? 1 : 0) | (last ? 2 : 0);
  return Buffer.concat([head, value]);
}

// A hand-rolled DICOM upper-layer client over TLS for protocol tests: it can send
// what no well-behaved tool sends (pipelined P-DATA, absurd lengths, garbage,
// out-of-order context IDs) and reads back raw PDUs.

import fs from 'node:fs';
import tls from 'node:tls';
import dimse from 'dcmjs-dimse';

export interface RawContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface RawRq {
  calledAe?: string;
  callingAe: string;
  contexts: RawContext[];
  maxPdu?: number;
  userIdentity?: { type: number; primary: string | Buffer; secondary?: string | Buffer; positive?: boolean };
  asyncOps?: [number, number];
  roles?: { abstractSyntax: string; scu: boolean; scp: boolean }[];
  applicationContext?: string;
  protocolVersion?: number;
}

export const UID = {
  Verification: '1.2.840.10008.1.1',
  CtStorage: '1.2.840.10008.5.1.4.1.1.2',
  MrStorage: '1.2.840.10008.5.1.4.1.1.4',
  SecondaryCapture: '1.2.840.10008.5.1.4.1.1.7',
  PatientRootFind: '1.2.840.10008.5.1.4.1.2.1.1',
  StudyRootFind: '1.2.840.10008.5.1.4.1.2.2.1',
  StudyRootGet: '1.2.840.10008.5.1.4.1.2.2.3',
  StudyRootMove: '1.2.840.10008.5.1.4.1.2.2.2',
  Worklist: '1.2.840.10008.5.1.4.31',
  ImplicitLE: '1.2.840.10008.1.2',
  ExplicitLE: '1.2.840.10008.1.2.1',
} as const;

const item = (type: number, body: Buffer): Buffer => {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUInt16BE(body.length, 2);
  return Buffer.concat([h, body]);
};
const ascii = (s: string) => Buffer.from(s, 'latin1');
const ae16 = (s: string) => ascii(s.padEnd(16, ' ').slice(0, 16));

export function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

export function associateRq(o: RawRq): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt16BE(o.protocolVersion ?? 1, 0);
  parts.push(head, ae16(o.calledAe ?? 'TRESOR'), ae16(o.callingAe), Buffer.alloc(32));
  parts.push(item(0x10, ascii(o.applicationContext ?? '1.2.840.10008.3.1.1.1')));
  for (const c of o.contexts) {
    parts.push(item(0x20, Buffer.concat([Buffer.from([c.id, 0, 0, 0]), item(0x30, ascii(c.abstractSyntax)), ...c.transferSyntaxes.map((t) => item(0x40, ascii(t)))])));
  }
  const user: Buffer[] = [];
  const max = Buffer.alloc(4);
  max.writeUInt32BE(o.maxPdu ?? 16384);
  user.push(item(0x51, max), item(0x52, ascii('1.2.3.4.5')));
  if (o.asyncOps) {
    const a = Buffer.alloc(4);
    a.writeUInt16BE(o.asyncOps[0], 0);
    a.writeUInt16BE(o.asyncOps[1], 2);
    user.push(item(0x53, a));
  }
  for (const r of o.roles ?? []) {
    const l = Buffer.alloc(2);
    l.writeUInt16BE(r.abstractSyntax.length);
    user.push(item(0x54, Buffer.concat([l, ascii(r.abstractSyntax), Buffer.from([r.scu ? 1 : 0, r.scp ? 1 : 0])])));
  }
  user.push(item(0x55, ascii('RAWTEST')));
  if (o.userIdentity) {
    const p = Buffer.isBuffer(o.userIdentity.primary) ? o.userIdentity.primary : Buffer.from(o.userIdentity.primary, 'utf8');
    const s = o.userIdentity.secondary === undefined ? Buffer.alloc(0) : Buffer.isBuffer(o.userIdentity.secondary) ? o.userIdentity.secondary : Buffer.from(o.userIdentity.secondary, 'utf8');
    const pl = Buffer.alloc(2);
    pl.writeUInt16BE(p.length);
    const sl = Buffer.alloc(2);
    sl.writeUInt16BE(s.length);
    user.push(item(0x58, Buffer.concat([Buffer.from([o.userIdentity.type, o.userIdentity.positive ? 1 : 0]), pl, p, sl, s])));
  }
  parts.push(item(0x50, Buffer.concat(user)));
  return pdu(0x01, Buffer.concat(parts));
}

export function pdata(pcId: number, command: boolean, last: boolean, value: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32BE(value.length + 2, 0);
  h[4] = pcId;
  h[5] = (command ? 1 : 0) | (last ? 2 : 0);
  return pdu(0x04, Buffer.concat([h, value]));
}

export const releaseRq = (): Buffer => pdu(0x05, Buffer.alloc(4));

/** A C-ECHO-RQ command set (implicit VR little endian), encoded by dcmjs-dimse. */
export function echoCommand(messageId: number): Buffer {
  const rq = new dimse.requests.CEchoRequest();
  rq.setMessageId(messageId);
  return rq.getCommandDataset().getDenaturalizedCommandDataset();
}

/** A command set from named elements (dcmjs keywords). */
export function commandSet(elements: Record<string, unknown>): Buffer {
  return new dimse.Dataset(elements, UID.ImplicitLE).getDenaturalizedCommandDataset();
}

/** A data set in the given transfer syntax, from named elements. */
export function dataset(elements: Record<string, unknown>, ts: string = UID.ImplicitLE): Buffer {
  return new dimse.Dataset(elements, ts).getDenaturalizedDataset();
}

/** Parses a command set received in a P-DATA PDV (implicit VR LE). */
export function parseCommand(value: Buffer): Record<string, unknown> {
  return new dimse.Dataset(value, UID.ImplicitLE).getElements();
}

export interface RawPdu {
  type: number;
  body: Buffer;
}

export interface Pdv {
  pcId: number;
  command: boolean;
  last: boolean;
  value: Buffer;
}

export function pdvsOf(body: Buffer): Pdv[] {
  const out: Pdv[] = [];
  for (let off = 0; off < body.length; ) {
    const len = body.readUInt32BE(off);
    out.push({ pcId: body[off + 4], command: (body[off + 5] & 1) !== 0, last: (body[off + 5] & 2) !== 0, value: body.subarray(off + 6, off + 4 + len) });
    off += 4 + len;
  }
  return out;
}

export class RawClient {
  private buf = Buffer.alloc(0);
  private waiting?: () => void;
  ended = false;
  constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiting?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** The next PDU, or 'closed' when the server closed the connection first. */
  async next(timeoutMs = 5000): Promise<RawPdu | 'closed'> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 6) {
        const len = this.buf.readUInt32BE(2);
        if (this.buf.length >= 6 + len) {
          const p = { type: this.buf[0], body: this.buf.subarray(6, 6 + len) };
          this.buf = this.buf.subarray(6 + len);
          return p;
        }
      }
      if (this.ended) return 'closed';
      const left = until - Date.now();
      if (left <= 0) throw new Error('no PDU in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(t);
          this.waiting = undefined;
          resolve();
        };
      });
    }
  }

  /** Resolves when the server has closed the connection (throws after timeoutMs). */
  async closed(timeoutMs = 5000): Promise<RawPdu[]> {
    const seen: RawPdu[] = [];
    for (;;) {
      const p = await this.next(timeoutMs);
      if (p === 'closed') return seen;
      seen.push(p);
    }
  }

  /** Reads the P-DATA PDVs of one complete message (command, and data set when present). */
  async message(timeoutMs = 5000): Promise<{ command: Record<string, unknown>; dataset?: Buffer; pcId: number }> {
    let cmd = Buffer.alloc(0);
    let data: Buffer | undefined;
    let pcId: number;
    let command: Record<string, unknown> | undefined;
    for (;;) {
      const p = await this.next(timeoutMs);
      if (p === 'closed') throw new Error('closed while waiting for a message');
      if (p.type !== 0x04) throw new Error(`PDU type ${p.type} while waiting for a message`);
      for (const v of pdvsOf(p.body)) {
        pcId = v.pcId;
        if (v.command) {
          cmd = Buffer.concat([cmd, v.value]);
          if (v.last) {
            command = parseCommand(cmd);
            if (command.CommandDataSetType === 0x0101) return { command, pcId };
          }
        } else {
          data = Buffer.concat([data ?? Buffer.alloc(0), v.value]);
          if (v.last) return { command: command!, dataset: data, pcId };
        }
      }
    }
  }

  end(): void {
    this.socket.end();
  }
  destroy(): void {
    this.socket.destroy();
  }
}

export interface TlsCreds {
  keyPath: string;
  certPath: string;
}

export async function connectRaw(port: number, o: { creds?: TlsCreds; caPath: string; localAddress?: string; keyPem?: string; certPem?: string }): Promise<RawClient> {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      // Passed on to net.connect: lets a test come from 127.0.0.2… (the per-address limit).
      ...({ localAddress: o.localAddress } as object),
      port,
      ca: fs.readFileSync(o.caPath),
      key: o.keyPem ?? (o.creds ? fs.readFileSync(o.creds.keyPath) : undefined),
      cert: o.certPem ?? (o.creds ? fs.readFileSync(o.creds.certPath) : undefined),
      servername: 'localhost',
      checkServerIdentity: () => undefined,
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
  socket.setNoDelay(true);
  return new RawClient(socket);
}

/** Associates (A-ASSOCIATE-RQ → AC/RJ) and returns the answer. */
export async function associate(c: RawClient, rq: RawRq): Promise<RawPdu | 'closed'> {
  c.send(associateRq(rq));
  return c.next();
}

/** Presentation context results of an A-ASSOCIATE-AC body: id → [result, transfer syntax]. */
export function acContexts(body: Buffer): Map<number, { result: number; ts: string }> {
  const out = new Map<number, { result: number; ts: string }>();
  for (let off = 68; off < body.length; ) {
    const type = body[off];
    const len = body.readUInt16BE(off + 2);
    if (type === 0x21) {
      const id = body[off + 4];
      const result = body[off + 6];
      const tl = body.readUInt16BE(off + 10);
      out.set(id, { result, ts: body.toString('latin1', off + 12, off + 12 + tl).replace(/\0+$/, '') });
    }
    off += 4 + len;
  }
  return out;
}

/** User information sub-items of an A-ASSOCIATE-AC body: type → values. */
export function acUserItems(body: Buffer): Map<number, Buffer[]> {
  const out = new Map<number, Buffer[]>();
  for (let off = 68; off < body.length; ) {
    const type = body[off];
    const len = body.readUInt16BE(off + 2);
    if (type === 0x50) {
      for (let u = off + 4; u < off + 4 + len; ) {
        const ut = body[u];
        const ul = body.readUInt16BE(u + 2);
        out.set(ut, [...(out.get(ut) ?? []), body.subarray(u + 4, u + 4 + ul)]);
        u += 4 + ul;
      }
    }
    off += 4 + len;
  }
  return out;
}

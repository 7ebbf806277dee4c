// One file of `tresor import` through the server's STOW-RS (PS3.18 §10.5), so it goes the
// same way as every other store: the caller's principal, the department rules of the core
// (core/access.ts) and one audited transfer per request. One file a request: the Store
// Instances Response then speaks of that file alone, and its Failure Reason (PS3.18 Table
// I.2-2) becomes the reason in the report. The file is streamed, never read whole.

import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { connectionError, type Session } from './api-client.js';
import { usageError } from './output.js';

export type Outcome = 'stored' | 'duplicate' | 'conflict' | 'refused' | 'skipped-not-dicom' | 'unreadable';

export interface FileResult {
  path: string;
  outcome: Outcome;
  reason?: string;
  bytes: number;
  sopInstanceUid?: string;
}

/** Failure Reasons of the Store Instances Response (PS3.18 Table I.2-2, PS3.7 C.4) in words. */
const FAILURE_TEXT: Record<number, string> = {
  0x0110: 'processing failure on the server',
  0x0111: 'another object with this SOP Instance UID but different content is already stored',
  0x0124: 'not authorized: no write role in the department, or the study belongs to another department',
  0xa700: 'refused: out of resources (object too large, or the server is short of space)',
  0xa900: 'the data set does not match its SOP class (required attributes missing, or the wrong study)',
  0xc000: 'the server cannot understand the file (not a readable DICOM Part 10 object)',
};

const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

/** The first 132 bytes hold the preamble and "DICM" of a Part 10 file (PS3.10 §7.1). */
export async function classify(file: string): Promise<{ size: number; skip?: string } | { unreadable: string }> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    return { unreadable: (e as NodeJS.ErrnoException).code ?? 'cannot open' };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { unreadable: 'not a regular file' };
    const size = st.size;
    const head = Buffer.alloc(132);
    const { bytesRead } = await fh.read(head, 0, 132, 0);
    if (bytesRead < 132 || head.toString('latin1', 128, 132) !== 'DICM') return { size, skip: 'no DICM prefix at byte 128 (PS3.10 §7.1): not a DICOM Part 10 file' };
    return { size };
  } catch (e) {
    return { unreadable: (e as NodeJS.ErrnoException).code ?? 'read failed' };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

class ReadFailure extends Error {}

function post(s: Session, agent: https.Agent, url: URL, file: string, size: number): Promise<Answer> {
  const boundary = `tresor-import-${randomBytes(12).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: 'POST',
      agent,
      ca: s.ca,
      timeout: 120_000,
      headers: {
        accept: 'application/dicom+json',
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
        'content-length': String(head.length + size + tail.length),
        authorization: `Bearer ${s.token()}`,
      },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 120 s'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.write(head);
    const input = createReadStream(file, { highWaterMark: 256 * 1024 });
    let sent = 0;
    input.on('data', (c) => {
      sent += c.length;
      if (!req.write(c)) {
        input.pause();
        req.once('drain', () => input.resume());
      }
    });
    input.on('error', (e: NodeJS.ErrnoException) => {
      const f = new ReadFailure(e.code ?? 'read failed');
      reject(f);
      req.destroy(f);
    });
    input.on('end', () => {
      if (sent !== size) {
        const f = new ReadFailure(`the file changed size while being read (${size} → ${sent} bytes)`);
        reject(f);
        req.destroy(f);
        return;
      }
      req.end(tail);
    });
  });
}

const NETWORK_RETRIES = 3;
const OUTAGE_RETRIES = 5;

/** Shared by the workers: one login again at a time when the token has expired. */
export function reloginOnce(s: Session): (refusedToken: string) => Promise<void> {
  let pending: Promise<void> | undefined;
  return async (refusedToken) => {
    if (pending) return pending;
    if (s.token() !== refusedToken) return; // another worker already logged in again
    pending = s.relogin().finally(() => (pending = undefined));
    return pending;
  };
}

export interface SendContext {
  session: Session;
  agent: https.Agent;
  department?: string;
  relogin: (refusedToken: string) => Promise<void>;
}

/** Sends one file and says what became of it. Connection loss after retries is thrown (exit 2). */
export async function sendFile(ctx: SendContext, file: string, size: number): Promise<FileResult> {
  const url = new URL('/dicomweb/studies', ctx.session.base);
  if (ctx.department !== undefined) url.searchParams.set('department', ctx.department);
  let networkTries = 0;
  let outageTries = 0;
  let relogged = false;
  for (;;) {
    let a: Answer;
    const token = ctx.session.token();
    try {
      a = await post(ctx.session, ctx.agent, url, file, size);
    } catch (e) {
      if (e instanceof ReadFailure) return { path: file, outcome: 'unreadable', reason: e.message, bytes: size };
      // A kept-alive socket the server closed, or a short outage: try again, then give up.
      if (++networkTries > NETWORK_RETRIES) throw connectionError(ctx.session.base, e as NodeJS.ErrnoException);
      await sleep(500 * networkTries);
      continue;
    }
    if (a.status === 401 && !relogged) {
      relogged = true;
      await ctx.relogin(token);
      continue;
    }
    if (a.status === 503 && ++outageTries <= OUTAGE_RETRIES) {
      // PS3.18 §8.6.1.2: nothing was stored; the server says when to try again.
      const after = Math.min(Math.max(Number(a.headers['retry-after']) || 5, 1), 60);
      await sleep(after * 1000);
      continue;
    }
    return interpret(file, size, a, ctx.department);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ui = (item: any, tag: string): string | undefined => {
  const v = item?.[tag]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
};

function interpret(file: string, size: number, a: Answer, department: string | undefined): FileResult {
  const base = { path: file, bytes: size };
  const body = a.body ?? {};
  const storedItem = body['00081199']?.Value?.[0];
  const failedItem = body['00081198']?.Value?.[0] ?? body['0008119A']?.Value?.[0];
  if ((a.status === 200 || a.status === 202) && storedItem) {
    const sopInstanceUid = ui(storedItem, '00081155');
    if (Number(a.headers['tresor-duplicates'] ?? 0) > 0) return { ...base, outcome: 'duplicate', reason: 'already stored with the same content', sopInstanceUid };
    const warning = storedItem['00081196']?.Value?.[0];
    const reason = warning === 0xb000 ? 'stored with Warning B000: an executable preamble was zeroed' : undefined;
    return { ...base, outcome: 'stored', sopInstanceUid, ...(reason ? { reason } : {}) };
  }
  if (failedItem) {
    const code = Number(failedItem['00081197']?.Value?.[0]);
    const text = FAILURE_TEXT[code] ?? 'refused by the server';
    const sopInstanceUid = ui(failedItem, '00081155');
    return { ...base, outcome: code === 0x0111 ? 'conflict' : 'refused', reason: `${hex(code)}: ${text}`, ...(sopInstanceUid ? { sopInstanceUid } : {}) };
  }
  const err = body.error;
  if (a.status === 400 && (err?.code === 'unknown-department' || err?.code === 'bad-department')) {
    throw usageError(`--department ${department}: ${err.message} List them with tresor department list.`);
  }
  const message = err && typeof err.message === 'string' ? `${a.status} ${err.code}: ${err.message}` : `HTTP ${a.status}`;
  if (a.status === 403) throw usageError(`the server refuses the login for storing: ${message}`);
  return { ...base, outcome: 'refused', reason: message };
}

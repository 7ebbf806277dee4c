// Signed checkpoints of the audit chain, kept outside the database (issue 14 item 3).
// A checkpoint states "the chain had `count` rows and its head was row `seq` with hash
// `hash`" at time `at`, MAC'd with the audit key. Deleting rows from the end of the table
// (truncation) cannot be hidden from a checkpoint: the row it names is gone, or the count
// up to it is smaller. `legacyThrough` pins where the pre-MAC rows end, so it cannot be
// moved in the database to pass MAC'd rows off as legacy.

import { timingSafeEqual } from 'node:crypto';
import type { AuditKey } from './ports/audit-key.js';

export interface AuditCheckpoint {
  v: 1;
  seq: number;
  hash: string;
  count: number;
  at: string;
  legacyThrough: number;
  mac: string;
}

export type CheckpointBody = Omit<AuditCheckpoint, 'mac'>;

const bodyText = (b: CheckpointBody): string =>
  JSON.stringify({ v: b.v, seq: b.seq, hash: b.hash, count: b.count, at: b.at, legacyThrough: b.legacyThrough });

export function signCheckpoint(key: AuditKey, body: CheckpointBody): AuditCheckpoint {
  return { ...body, mac: key.mac('checkpoint', bodyText(body)) };
}

export function formatCheckpoint(cp: AuditCheckpoint): string {
  return JSON.stringify(cp);
}

/** Parses and authenticates one line; null when it is not a checkpoint this key signed. */
export function parseCheckpoint(key: AuditKey, line: string): AuditCheckpoint | null {
  let o: any;
  try {
    o = JSON.parse(line);
  } catch {
    return null;
  }
  if (!o || o.v !== 1 || !Number.isSafeInteger(o.seq) || !Number.isSafeInteger(o.count) || !Number.isSafeInteger(o.legacyThrough)) return null;
  if (typeof o.hash !== 'string' || typeof o.at !== 'string' || typeof o.mac !== 'string') return null;
  const cp: AuditCheckpoint = { v: 1, seq: o.seq, hash: o.hash, count: o.count, at: o.at, legacyThrough: o.legacyThrough, mac: o.mac };
  return sameMac(key.mac('checkpoint', bodyText(cp)), cp.mac) ? cp : null;
}

/** Constant-time comparison of two hex MACs. */
export function sameMac(expected: string, given: string | null | undefined): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(given));
}

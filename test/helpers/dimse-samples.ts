// The Debian pydicom sample set through dcmtk's storescu: one storescu run per
// transfer syntax, with the option that makes storescu propose (and therefore send)
// that syntax unchanged; the store outcome of every file is read from storescu's log.

import fs from 'node:fs';
import path from 'node:path';
import { parseMeta } from '../../src/dimse/part10-reader.js';
import { run, tlsArgs } from './dimse-tools.js';
import { sampleFiles } from './samples.js';

/** storescu `-x?` / getscu `+x?` letter that proposes/prefers each transfer syntax. */
export const TS_OPTION: Record<string, string> = {
  '1.2.840.10008.1.2': 'i',
  '1.2.840.10008.1.2.1': 'e',
  '1.2.840.10008.1.2.2': 'b',
  '1.2.840.10008.1.2.4.50': 'y',
  '1.2.840.10008.1.2.4.51': 'x',
  '1.2.840.10008.1.2.4.70': 's',
  '1.2.840.10008.1.2.4.80': 't',
  '1.2.840.10008.1.2.4.81': 'u',
  '1.2.840.10008.1.2.4.90': 'v',
  '1.2.840.10008.1.2.4.91': 'w',
  '1.2.840.10008.1.2.5': 'r',
};

export interface SampleInfo {
  file: string;
  transferSyntaxUid?: string;
}

export function samplesByTransferSyntax(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const file of sampleFiles()) {
    let ts: string;
    try {
      ts = parseMeta(fs.readFileSync(file))?.transferSyntaxUid ?? 'none';
    } catch {
      ts = 'none';
    }
    out.set(ts, [...(out.get(ts) ?? []), file]);
  }
  return out;
}

export interface StoreOutcome {
  file: string;
  status: string; // 'Success', 'Unknown Status: 0x111', 'failed to send', 'ignored'
}

/** Parses storescu -v output: which file got which answer. */
export function parseStorescuLog(log: string, files: string[]): StoreOutcome[] {
  const out = new Map<string, string>(files.map((f) => [f, 'ignored']));
  let current: string | undefined;
  for (const line of log.split('\n')) {
    const sending = /Sending file: (.*)$/.exec(line);
    if (sending) current = sending[1].trim();
    const rsp = /Received Store Response \((.*)\)/.exec(line);
    if (rsp && current) out.set(current, rsp[1]);
    if (/Store Failed, file:/.test(line) && current) out.set(current, 'failed to send');
  }
  return [...out].map(([file, status]) => ({ file, status }));
}

/** Stores every sample whose transfer syntax storescu can propose as is; returns each file's outcome. */
export async function storeSampleSet(port: number, callingAe: string, creds: { keyPath: string; certPath: string }, caPath: string, calledAe = 'TRESOR'): Promise<StoreOutcome[]> {
  const outcomes: StoreOutcome[] = [];
  for (const [ts, files] of samplesByTransferSyntax()) {
    const opt = TS_OPTION[ts];
    if (!opt) {
      outcomes.push(...files.map((file) => ({ file, status: 'not sent' })));
      continue;
    }
    const r = await run('storescu', ['-v', '-R', '-nh', `-x${opt}`, '-aet', callingAe, '-aec', calledAe, ...tlsArgs(creds, caPath), '127.0.0.1', String(port), ...files], { timeoutMs: 120_000 });
    outcomes.push(...parseStorescuLog(r.stdout + r.stderr, files));
  }
  return outcomes.sort((a, b) => path.basename(a.file).localeCompare(path.basename(b.file)));
}

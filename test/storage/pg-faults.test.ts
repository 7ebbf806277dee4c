// Database faults against a real PostgreSQL of the test's own (test/helpers/private-
// postgres.ts), stopped and started under a running Tresor — the production composition
// (createDeps, buildApp, startDimseServer) in this process, which is never restarted.
// Issue 11 item 3, the database half: during the outage every client gets an answer —
// success, or a retryable failure (C-STORE 0xA700, STOW 503 + Retry-After) — never a hang;
// every instance reported stored is stored (byte-identical); nothing is orphaned (each
// blob has its row, or is journaled and swept); re-sending anything succeeds; a new DIMSE
// association is rejected as transient (PS3.8 §9.3.4) rather than as unknown; /healthz
// stays 200 (liveness) while /readyz names the database; Tresor recovers by itself.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openDb, type Db } from '../../src/db/knex.js';
import type { Deps } from '../../src/deps.js';
import type { DimseServer } from '../../src/dimse/server.js';
import { allKeys } from '../helpers/core.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { multipart, parseMultipartResponse } from '../helpers/dicomweb.js';
import { associate, commandSet, connectRaw, dataset, pdata, UID, type RawClient } from '../helpers/dimse-raw.js';
import { CLIENT_TIMEOUT_MS, request, startFaultServer, waitFor, type FaultServer, type Reply } from '../helpers/fault-server.js';
import { run, tlsArgs, type RunResult } from '../helpers/dimse-tools.js';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.js';
import { SAMPLE_DIR, sha256 } from '../helpers/samples.js';

const CLIENTS = 4;
const PER_CLIENT = 30;
const STOWS = 16;
const SAMPLE_SOP_UID = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322';
const STUDY_UID = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const SERIES_UID = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';

/** The data set of a Part 10 file (what C-STORE carries; the meta header is the receiver's own). */
function dataSet(part10: Buffer): Buffer {
  const ds = part10.subarray(144 + part10.readUInt32LE(140));
  // storescu does not send the sample's trailing padding (FFFC,FFFC), explicit VR OB, last in the file.
  const padding = ds.lastIndexOf(Buffer.from([0xfc, 0xff, 0xfc, 0xff, 0x4f, 0x42, 0, 0]));
  return padding >= 0 && padding + 12 + ds.readUInt32LE(padding + 8) === ds.length ? ds.subarray(0, padding) : ds;
}

type Answer = 'success' | 'retry' | 'other';

/** The answer storescu -v got for each file it sent (one request at a time, in order). */
function answers(output: string): Map<string, Answer> {
  const out = new Map<string, Answer>();
  let current: string | undefined;
  for (const line of output.split('\n')) {
    const sending = /Sending file: (.+)$/.exec(line);
    if (sending) current = sending[1].trim();
    const rsp = /Received Store Response \(([^)]*)\)/.exec(line);
    if (rsp && current) {
      out.set(current, rsp[1] === 'Success' ? 'success' : /Refused: OutOfResources/.test(rsp[1]) ? 'retry' : 'other');
      current = undefined;
    }
  }
  return out;
}

describe('PostgreSQL stopped and started under a running Tresor', () => {
  let pgs: PrivatePostgres;
  let db: Db;
  let dir: string;
  let server: FaultServer;
  let deps: Deps;
  let dimse: DimseServer;
  let base: string;
  let token: string;
  let caPath: string;
  let ct: { keyPath: string; certPath: string };
  let round = 0;

  beforeAll(async () => {
    pgs = await startPrivatePostgres();
    db = await openDb({ url: pgs.url });
    await migrate(db);
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'tresor-pg-faults-'));
    server = await startFaultServer(dir, db, { databaseUrl: pgs.url });
    ({ deps, dimse, base, token, caPath, ct } = server);
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    await db?.destroy();
    await pgs?.close();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  // --no-halt: after a refusal storescu goes on with the next file (by default it stops
  // and releases), so every file of the outage is sent and must be answered.
  const storescu = (files: string[]): Promise<RunResult> =>
    run('storescu', ['-v', '--no-halt', '-aet', 'CT01', '-aec', deps.config.aeTitle, ...tlsArgs(ct, caPath), '127.0.0.1', String(dimse.port), ...files], { timeoutMs: CLIENT_TIMEOUT_MS });
  const stow = (bytes: Buffer) => {
    const m = multipart([{ body: bytes }]);
    return request(base, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': m.contentType, accept: 'application/dicom+json' }, body: m.body });
  };
  const instances = async () => Number((await db('instances').count({ n: '*' }))[0].n);
  const wado = (study: string, series: string, sop: string) =>
    request(base, 'GET', `/dicomweb/studies/${study}/series/${series}/instances/${sop}`, { token, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
  const only = (r: Reply) => parseMultipartResponse(r.headers['content-type'], r.body)[0].body;
  const status = async (p: string) => (await request(base, 'GET', p)).status;

  async function outageDuringIngest(mode: 'fast' | 'immediate'): Promise<void> {
    round++;
    // Distinct instances of one study for the DIMSE clients (the sample with its SOP
    // Instance UID replaced by one of the same length), fresh studies for STOW.
    const sample = fs.readFileSync(path.join(SAMPLE_DIR, 'CT_small.dcm'));
    const files: string[][] = [];
    const dimseSource = new Map<string, { sop: string; sha: string }>();
    for (let c = 0; c < CLIENTS; c++) {
      const d = path.join(dir, `r${round}-c${c}`);
      await fsp.mkdir(d);
      files.push([]);
      for (let i = 0; i < PER_CLIENT; i++) {
        const sop = SAMPLE_SOP_UID.replace(/12322$/, String(10000 + round * 1000 + c * 100 + i).slice(-5));
        const bytes = Buffer.from(sample.toString('latin1').split(SAMPLE_SOP_UID).join(sop), 'latin1');
        const f = path.join(d, `${i}.dcm`);
        await fsp.writeFile(f, bytes);
        files[c].push(f);
        dimseSource.set(f, { sop, sha: sha256(dataSet(bytes)) });
      }
    }
    const stowSource = Array.from({ length: STOWS }, () => reissue('CT_small.dcm'));
    const before = await instances();

    // Four associations and a STOW-RS client at once; PostgreSQL stops once a fair share is stored.
    const clients = files.map((list) => storescu(list));
    const stowReplies: (Reply | Error)[] = [];
    const stowLoop = (async () => {
      for (const s of stowSource) {
        stowReplies.push(await stow(s.bytes).catch((e: Error) => e));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const target = before + Math.floor((CLIENTS * PER_CLIENT) / 5);
    await waitFor('a fair share stored before the stop', async () => (await instances()) >= target, CLIENT_TIMEOUT_MS);
    await pgs.stop(mode);
    let outputs: RunResult[];
    try {
      // Every client finishes — with answers — while the database is still down.
      outputs = await Promise.all(clients);
      await stowLoop;
    } finally {
      await pgs.start();
    }

    // Each C-STORE got Success or A700 (Refused: Out of Resources), never another failure,
    // and no client was left waiting (run() kills at CLIENT_TIMEOUT_MS: the code would be null).
    const got = new Map<string, Answer>();
    outputs.forEach((o, c) => {
      expect(o.code, o.stdout + o.stderr).not.toBeNull();
      const a = answers(o.stdout + o.stderr);
      for (const f of files[c]) {
        expect(a.get(f) ?? 'none', `${f}:\n${o.stdout}${o.stderr}`).toMatch(/^(success|retry)$/);
        got.set(f, a.get(f)!);
      }
    });
    const dimseOk = [...got].filter(([, a]) => a === 'success').map(([f]) => f);
    const dimseFailed = [...got].filter(([, a]) => a === 'retry').map(([f]) => f);
    expect(dimseFailed.length, 'the stop came during the DIMSE ingest').toBeGreaterThan(0);
    expect(dimseOk.length).toBeGreaterThan(0);

    // Each STOW got 200, or 503 with Retry-After (from the authentication's lookup, or a
    // part's A700): never a 500, a 409 or no answer.
    const stowOk: number[] = [];
    stowReplies.forEach((r, i) => {
      expect(r, String(r)).not.toBeInstanceOf(Error);
      const rep = r as Reply;
      expect([200, 503], rep.body.toString()).toContain(rep.status);
      if (rep.status === 200) stowOk.push(i);
      else expect(Number(rep.headers['retry-after'])).toBeGreaterThan(0);
    });
    expect(stowReplies.some((r) => (r as Reply).status === 503), 'a STOW met the outage').toBe(true);

    // Recovered without a restart of Tresor.
    await waitFor('/readyz 200 after PostgreSQL came back', async () => (await status('/readyz')) === 200);

    // Reported stored ⇒ stored, byte-identical, before anything is re-sent.
    for (const f of dimseOk) {
      const { sop, sha } = dimseSource.get(f)!;
      const r = await wado(STUDY_UID, SERIES_UID, sop);
      expect(r.status, sop).toBe(200);
      expect(sha256(dataSet(only(r))), sop).toBe(sha);
    }
    for (const i of stowOk) {
      const s = stowSource[i];
      const r = await wado(s.study, s.series, s.sop);
      expect(r.status, s.sop).toBe(200);
      expect(sha256(only(r))).toBe(sha256(s.bytes));
    }

    // Nothing orphaned: every blob has its row, or is journaled for the sweeper.
    const referenced = new Set((await db('instances').pluck('object_key')) as string[]);
    const journaled = new Set((await db('blob_journal').pluck('object_key')) as string[]);
    for (const key of await allKeys(deps.blobs)) expect(referenced.has(key) || journaled.has(key), `${key} has no row and no journal entry`).toBe(true);

    // Re-sending everything succeeds (what was stored is a duplicate with the same bytes,
    // what failed is stored now), over new associations to the same process.
    const again = await Promise.all(files.map((list) => storescu(list)));
    again.forEach((o, c) => {
      expect(o.code, o.stdout + o.stderr).toBe(0);
      const a = answers(o.stdout + o.stderr);
      for (const f of files[c]) expect(a.get(f), f).toBe('success');
    });
    for (const s of stowSource) expect((await stow(s.bytes)).status).toBe(200);
    expect(await instances()).toBe(before + CLIENTS * PER_CLIENT + STOWS);
    for (const f of dimseFailed) {
      const { sop, sha } = dimseSource.get(f)!;
      expect(sha256(dataSet(only(await wado(STUDY_UID, SERIES_UID, sop)))), sop).toBe(sha);
    }

    // The sweep (hourly in `tresor serve`; here at once) removes what the outage left, and
    // never a blob a row references: afterwards blobs and rows agree one to one.
    await deps.sweepBlobs({ minAgeMs: 0 });
    const rows = (await db('instances').select('object_key', 'sha256')) as { object_key: string; sha256: string }[];
    expect(new Set(await allKeys(deps.blobs))).toEqual(new Set(rows.map((r) => r.object_key)));
    expect(Number((await db('blob_journal').count({ n: '*' }))[0].n)).toBe(0);
  }

  it('pg_ctl stop -m fast mid-ingest (4 TLS associations + STOW-RS): answers, not hangs; reported stored is stored; re-send succeeds; nothing orphaned', async () => {
    await outageDuringIngest('fast');
  }, 300_000);

  it('pg_ctl stop -m immediate (a crash of PostgreSQL) mid-ingest: the same', async () => {
    await outageDuringIngest('immediate');
  }, 300_000);

  it('an association opened before the outage: C-FIND and C-STORE answer 0xA700 while PostgreSQL is down, and succeed on the same association after', async () => {
    const c: RawClient = await connectRaw(dimse.port, { creds: ct, caPath });
    try {
      const contexts = [
        { id: 1, abstractSyntax: UID.StudyRootFind as string, transferSyntaxes: [UID.ExplicitLE as string] },
        { id: 3, abstractSyntax: UID.CtStorage as string, transferSyntaxes: [UID.ExplicitLE as string] },
      ];
      const ac = await associate(c, { callingAe: 'CT01', calledAe: deps.config.aeTitle, contexts });
      expect(ac !== 'closed' && ac.type).toBe(0x02);
      let msg = 20;
      /** The final status of a C-FIND (pending answers skipped). */
      const find = async (): Promise<number> => {
        c.send(pdata(1, true, true, commandSet({ CommandField: 0x0020, MessageID: ++msg, AffectedSOPClassUID: UID.StudyRootFind, Priority: 0, CommandDataSetType: 0 })));
        c.send(pdata(1, false, true, dataset({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' }, UID.ExplicitLE)));
        for (;;) {
          const m = await c.message(30_000);
          if (m.command.Status !== 0xff00) return m.command.Status as number;
        }
      };
      const store = async (): Promise<number> => {
        const o = reissue('CT_small.dcm');
        c.send(pdata(3, true, true, commandSet({ CommandField: 0x0001, MessageID: ++msg, AffectedSOPClassUID: UID.CtStorage, AffectedSOPInstanceUID: o.sop, Priority: 0, CommandDataSetType: 0 })));
        c.send(pdata(3, false, true, dataSet(o.bytes)));
        return (await c.message(30_000)).command.Status as number;
      };
      expect(await find()).toBe(0);
      expect(await store()).toBe(0);
      await pgs.stop('fast');
      try {
        // PS3.4 C.4.1.1.4 and B.2.3: A700 Refused: Out of Resources — try again later.
        expect(await find()).toBe(0xa700);
        expect(await store()).toBe(0xa700);
      } finally {
        await pgs.start();
      }
      // A database outage is not a revocation: the association lives on and works again.
      expect(await find()).toBe(0);
      expect(await store()).toBe(0);
    } finally {
      c.destroy();
    }
  }, 180_000);

  it('while PostgreSQL is down: /healthz 200, /readyz 503 naming the database, a new association rejected as transient (PS3.8 §9.3.4); all fine after', async () => {
    expect(await status('/healthz')).toBe(200);
    expect(await status('/readyz')).toBe(200);
    const file = path.join(dir, 'one.dcm');
    await fsp.writeFile(file, reissue('CT_small.dcm').bytes);
    await pgs.stop('fast');
    try {
      expect(await status('/healthz')).toBe(200);
      await waitFor('/readyz 503', async () => (await status('/readyz')) === 503);
      const body = JSON.parse((await request(base, 'GET', '/readyz')).body.toString());
      expect(body.error.code).toBe('unhealthy');
      expect(body.error.message).toContain('database');
      expect(body.error.message).not.toContain('blob-store');
      // A-ASSOCIATE-RJ: rejected-transient, service-provider (presentation), temporary congestion.
      const r = await storescu([file]);
      const out = r.stdout + r.stderr;
      expect(out).toMatch(/Association Rejected/);
      expect(out).toMatch(/Rejected Transient/i);
      expect(out).toMatch(/Temporary Congestion/i);
      expect(r.ms).toBeLessThan(CLIENT_TIMEOUT_MS);
      // STOW: 503 + Retry-After.
      const s = await stow(reissue('CT_small.dcm').bytes);
      expect(s.status, s.body.toString()).toBe(503);
      expect(Number(s.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await pgs.start();
    }
    await waitFor('/readyz 200', async () => (await status('/readyz')) === 200);
    expect(await status('/healthz')).toBe(200);
    const ok = await storescu([file]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout + ok.stderr).toMatch(/Received Store Response \(Success\)/);
  }, 180_000);
});

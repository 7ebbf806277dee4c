// Issue 2: every pydicom sample through ingest and back through retrieve,
// byte-identical, on both databases and both blob stores; broken files refused
// with nothing left behind; the fault cases of ARCHITECTURE.md rule 6.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import dcmjs from '../../src/core/dicom/dcmjs.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTresorError } from '../../src/core/errors.js';
import type { Principal } from '../../src/core/principal.js';
import type { Db } from '../../src/db/knex.js';
import { createIngestRepo } from '../../src/db/ingest.repo.js';
import { sweepBlobJournal } from '../../src/core/blob-journal.js';
import { createBlobJournalRepo } from '../../src/db/blob-journal.repo.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';
import { allKeys, coreServices, createDepartment, principal, readAll, storesUnderTest, wipe } from '../helpers/core.js';
import { databasesUnderTest } from '../helpers/db.js';
import { BROKEN_SAMPLES, sampleFiles, sha256 } from '../helpers/samples.js';

(dcmjs as any).log?.setLevel?.('silent');

function sopUidOf(file: string): string {
  const b = fs.readFileSync(file);
  const d = dcmjs.data.DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.length), { ignoreErrors: true });
  return String(d.dict['00080018'].Value[0]);
}

async function rowCount(db: Db, table: string): Promise<number> {
  const [{ n }] = await db(table).count({ n: '*' });
  return Number(n);
}

async function expectRefused(p: Promise<unknown>, kind: string, reason?: string) {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(isTresorError(e), `expected a TresorError, got ${String(e)}`).toBe(true);
  if (!isTresorError(e)) return;
  expect(e.kind).toBe(kind);
  if (reason) expect(e.reason).toBe(reason);
}

for (const dbu of databasesUnderTest()) {
  for (const su of storesUnderTest()) {
    describe(`ingest + retrieve on ${dbu.name} with ${su.name} blobs`, () => {
      let db: Db;
      let store: BlobStore;
      let closeDb: () => Promise<void>;
      let closeStore: () => Promise<void>;
      let svc: Awaited<ReturnType<typeof coreServices>>;
      let deptA: number;
      let deptB: number;
      let writerA: Principal;
      let readerA: Principal;
      let readerB: Principal;

      beforeAll(async () => {
        ({ db, close: closeDb } = await dbu.open());
        ({ store, close: closeStore } = await su.open());
        svc = await coreServices(db, store);
        deptA = await createDepartment(db, 'Radiology');
        deptB = await createDepartment(db, 'Cardiology');
        writerA = principal('CT_A', [[deptA, 'writer']]);
        readerA = principal('VIEW_A', [[deptA, 'reader']]);
        readerB = principal('VIEW_B', [[deptB, 'reader']]);
      });
      afterAll(async () => {
        await closeStore?.();
        await closeDb?.();
        fs.rmSync(svc?.tmpDir ?? '/nonexistent', { recursive: true, force: true });
      });

      it('stores every valid sample once, refuses broken ones and conflicting re-sends, and returns the bytes unchanged', async () => {
        const seen = new Map<string, string>(); // SOP Instance UID → sha256 of the first stored file
        const stored = new Map<string, string>(); // SOP Instance UID → file
        const counts = { stored: 0, duplicate: 0, conflict: 0, broken: 0 };
        for (const file of sampleFiles()) {
          const name = path.basename(file);
          const before = { rows: await rowCount(db, 'instances'), studies: await rowCount(db, 'studies'), blobs: (await allKeys(store)).length };
          if (BROKEN_SAMPLES[name]) {
            await expectRefused(svc.ingest.ingestFile(writerA, file, { via: 'dimse' }), 'invalid', BROKEN_SAMPLES[name]);
            counts.broken++;
          } else {
            const uid = sopUidOf(file);
            const hash = sha256(file);
            const prior = seen.get(uid);
            if (prior === undefined || prior === hash) {
              const r = await svc.ingest.ingestFile(writerA, file, { via: 'dimse' });
              expect(r.sopInstanceUid).toBe(uid);
              expect(r.outcome, name).toBe(prior === undefined ? 'stored' : 'duplicate');
              if (prior === undefined) {
                seen.set(uid, hash);
                stored.set(uid, file);
                counts.stored++;
              } else counts.duplicate++;
            } else {
              await expectRefused(svc.ingest.ingestFile(writerA, file, { via: 'dimse' }), 'conflict', 'sop-instance-conflict');
              counts.conflict++;
            }
          }
          const after = { rows: await rowCount(db, 'instances'), studies: await rowCount(db, 'studies'), blobs: (await allKeys(store)).length };
          const grew = after.rows - before.rows;
          expect(after.blobs - before.blobs, `${name}: one blob per new row`).toBe(grew);
          if (BROKEN_SAMPLES[name]) expect(after, `${name} left something behind`).toEqual(before);
        }
        expect(counts.broken).toBe(Object.keys(BROKEN_SAMPLES).length);
        // Deterministic for Debian's pydicom 2.3 sample set: 30 distinct instances, one
        // byte-identical copy (SC_rgb_jpeg_app14_dcmd.dcm) and the re-encodings of MR_small,
        // SC_rgb_rle, rtdose, liver and reportsi refused as conflicts.
        expect(counts).toEqual({ stored: 30, duplicate: 1, conflict: sampleFiles().length - 30 - 1 - counts.broken, broken: 13 });
        expect(counts.conflict).toBeGreaterThan(10);

        // Every stored instance comes back byte-identical, found by its SOP Instance UID.
        for (const [uid, file] of stored) {
          const [inst] = await svc.retrieve.list(readerA, { level: 'IMAGE', sopInstanceUids: [uid] });
          const bytes = await readAll(await svc.retrieve.open(inst));
          expect(sha256(bytes), path.basename(file)).toBe(sha256(file));
          expect(inst.sha256).toBe(sha256(file));
        }
        // The bucket holds exactly the objects the rows point at: no orphans either way.
        const keys = (await db('instances').select('object_key')).map((r: any) => r.object_key).sort();
        expect(await allKeys(store)).toEqual(keys);
        // Every upload's journal entry went with its row (or with its blob).
        expect(await rowCount(db, 'blob_journal')).toBe(0);
      });

      it('a reader of another department finds none of it: not-found, never forbidden', async () => {
        const [any] = await db('studies').select('study_uid').limit(1);
        await expectRefused(svc.retrieve.list(readerB, { level: 'STUDY', studyUids: [any.study_uid] }), 'not-found');
        // The writer (a modality) may store but not read back.
        await expectRefused(svc.retrieve.list(writerA, { level: 'STUDY', studyUids: [any.study_uid] }), 'not-found');
        const [bare] = await svc.retrieve.list(readerA, { level: 'STUDY', studyUids: [any.study_uid] });
        // Metadata (JSONB) only when asked for: C-GET/C-MOVE of a large study never loads it.
        expect(bare.metadata).toEqual({});
        const [full] = await svc.retrieve.list(readerA, { level: 'IMAGE', sopInstanceUids: [bare.sopInstanceUid] }, { withMetadata: true });
        expect(full.metadata['00080018']?.Value).toEqual([bare.sopInstanceUid]);
      });

      it('each valid sample alone in an empty store round-trips byte-identical', async () => {
        for (const file of sampleFiles()) {
          if (BROKEN_SAMPLES[path.basename(file)]) continue;
          await wipe(db, store);
          const r = await svc.ingest.ingestFile(writerA, file, { via: 'dicomweb' });
          expect(r.outcome).toBe('stored');
          const [inst] = await svc.retrieve.list(readerA, { level: 'IMAGE', sopInstanceUids: [r.sopInstanceUid] });
          expect(sha256(await readAll(await svc.retrieve.open(inst))), path.basename(file)).toBe(sha256(file));
        }
      });
    });
  }
}

describe('ingest rules and faults (PGlite, filesystem)', () => {
  const [dbu] = databasesUnderTest();
  const [fsu] = storesUnderTest();
  const CT = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
  let db: Db;
  let store: BlobStore;
  let close: () => Promise<void>;
  let deptA: number;
  let deptB: number;
  let tmp: string;

  beforeAll(async () => {
    const d = await dbu.open();
    const s = await fsu.open();
    db = d.db;
    store = s.store;
    close = async () => { await s.close(); await d.close(); };
    deptA = await createDepartment(db, 'A');
    deptB = await createDepartment(db, 'B');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-ingest-'));
  });
  afterAll(async () => {
    await close?.();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const clean = async () => wipe(db, store);

  it('zeroes an executable preamble (CVE-2019-11687) and audits it; keeps a TIFF preamble', async () => {
    await clean();
    const svc = await coreServices(db, store);
    const w = principal('CT', [[deptA, 'writer']]);
    const r = principal('VIEW', [[deptA, 'reader']]);
    const original = fs.readFileSync(CT);
    expect(original.subarray(0, 4).toString('latin1')).toBe('II*\0'); // TIFF, stays
    const polyglot = Buffer.from(original);
    Buffer.from('MZ\x90\x00This program cannot be run in DOS mode', 'latin1').copy(polyglot, 0);
    const file = path.join(tmp, 'polyglot.dcm');
    fs.writeFileSync(file, polyglot);
    const res = await svc.ingest.ingestFile(w, file, { via: 'dicomweb' });
    expect(res.warnings).toContain('preamble-zeroed');
    const [inst] = await svc.retrieve.list(r, { level: 'IMAGE', sopInstanceUids: [res.sopInstanceUid] });
    const back = await readAll(await svc.retrieve.open(inst));
    expect(back.subarray(0, 128).equals(Buffer.alloc(128))).toBe(true);
    expect(back.subarray(128).equals(original.subarray(128))).toBe(true);
    const [ev] = await svc.audit.list({ action: 'store', limit: 1 });
    expect(ev.details.warnings).toContain('preamble-zeroed');

    for (const [label, head] of [['ELF', '\x7fELF'], ['script', '#!/bin/sh\n'], ['zip', 'PK\x03\x04'], ['html', '  <html><script>'], ['json', '{"a":1}']]) {
      await clean();
      const b = Buffer.from(original);
      Buffer.from(head, 'latin1').copy(b, 0);
      fs.writeFileSync(file, b);
      const rr = await svc.ingest.ingestFile(w, file, { via: 'dicomweb' });
      expect(rr.warnings, label).toContain('preamble-zeroed');
    }
    await clean();
    const plain = await svc.ingest.ingestFile(w, CT, { via: 'dicomweb' });
    expect(plain.warnings).not.toContain('preamble-zeroed');
  });

  it('refuses by department: reader cannot store, another department cannot add to a study, several departments need a choice', async () => {
    await clean();
    const svc = await coreServices(db, store);
    await expectRefused(svc.ingest.ingestFile(principal('R', [[deptA, 'reader']]), CT, { via: 'dimse' }), 'forbidden');
    await svc.ingest.ingestFile(principal('CT_A', [[deptA, 'writer']]), CT, { via: 'dimse' });
    // Same study, another instance, from department B's writer: conflict, not merged.
    const other = fs.readFileSync(CT);
    const d = dcmjs.data.DicomMessage.readFile(other.buffer.slice(other.byteOffset, other.byteOffset + other.length));
    d.dict['00080018'].Value = ['1.2.3.4.5.6.7.8.9'];
    d.meta['00020003'].Value = ['1.2.3.4.5.6.7.8.9'];
    const f2 = path.join(tmp, 'other.dcm');
    fs.writeFileSync(f2, Buffer.from(d.write()));
    await expectRefused(svc.ingest.ingestFile(principal('CT_B', [[deptB, 'writer']]), f2, { via: 'dimse' }), 'conflict', 'study-in-other-department');
    expect(await rowCount(db, 'instances')).toBe(1);
    // A writer of both departments cannot move the study into B either.
    await expectRefused(svc.ingest.ingestFile(principal('CT_AB', [[deptA, 'writer'], [deptB, 'writer']]), f2, { via: 'dimse', departmentId: deptB }), 'conflict', 'study-in-other-department');
    await clean();
    await expectRefused(svc.ingest.ingestFile(principal('CT_AB', [[deptA, 'writer'], [deptB, 'writer']]), CT, { via: 'dimse' }), 'invalid', 'department-required');
    const ok = await svc.ingest.ingestFile(principal('CT_AB', [[deptA, 'writer'], [deptB, 'writer']]), CT, { via: 'dimse', departmentId: deptB });
    expect(ok.outcome).toBe('stored');
    expect(await svc.audit.list({ outcome: 'denied', action: 'store' })).not.toHaveLength(0);
  });

  it('a blob store failing mid-write leaves no row and no blob', async () => {
    await clean();
    const failing: BlobStore = {
      ...store,
      async put(key, body) {
        // Take part of the stream, write a partial object through the real store, then fail.
        const partial = new PassThrough();
        // The store attaches its own listeners only after its first await (mkdir): without
        // this one, an early failure would be an uncaught 'error' under load, not a refusal.
        partial.on('error', () => undefined);
        let n = 0;
        body.on('data', (c: Buffer) => {
          if (partial.destroyed) return;
          n += c.length;
          if (n > 1000) {
            body.destroy();
            partial.destroy(new Error('disk on fire'));
          } else partial.write(c);
        });
        await store.put(key, partial);
        throw new Error('unreachable');
      },
    };
    const svc = await coreServices(db, failing);
    await expect(svc.ingest.ingestFile(principal('CT', [[deptA, 'writer']]), CT, { via: 'dimse' })).rejects.toThrow();
    expect(await rowCount(db, 'instances')).toBe(0);
    expect(await rowCount(db, 'studies')).toBe(0);
    expect(await allKeys(store)).toEqual([]);
  });

  it('the database failing mid-transaction leaves no row and no blob', async () => {
    await clean();
    // A real failure inside the transaction, after the study and series rows were written.
    await db.raw(`CREATE OR REPLACE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'simulated failure'; END $$`);
    await db.raw(`CREATE TRIGGER fail_instances BEFORE INSERT ON instances FOR EACH ROW EXECUTE FUNCTION fail_insert()`);
    try {
      const svc = await coreServices(db, store);
      await expect(svc.ingest.ingestFile(principal('CT', [[deptA, 'writer']]), CT, { via: 'dimse' })).rejects.toThrow();
      expect(await rowCount(db, 'studies')).toBe(0);
      expect(await rowCount(db, 'series')).toBe(0);
      expect(await allKeys(store)).toEqual([]);
    } finally {
      await db.raw('DROP TRIGGER fail_instances ON instances');
    }
  });

  it('a look-ahead from the first bytes (issue 13) is the one lookup when its UIDs match; otherwise or unused it leaves no journal entry', async () => {
    await clean();
    const repo = createIngestRepo(db);
    const looked: string[] = [];
    const counting = { ...repo, lookup: (q: Parameters<typeof repo.lookup>[0]) => (looked.push(q.sopInstanceUid), repo.lookup(q)) };
    const svc = await coreServices(db, store, { ingestRepo: counting });
    const t = svc.ingest.openTransfer(principal('CT', [[deptA, 'writer']]), { via: 'dimse', source: 'CT' });
    const journalEmpty = async () => {
      for (let i = 0; i < 100 && (await rowCount(db, 'blob_journal')) > 0; i++) await new Promise((r) => setTimeout(r, 20));
      return (await rowCount(db, 'blob_journal')) === 0;
    };
    const ct = fs.readFileSync(CT);
    const ctUid = sopUidOf(CT);

    // The look-ahead reads the head and starts its lookup within a turn of the event loop.
    const turn = () => new Promise((r) => setImmediate(r));
    // Matching UIDs: looked up once, from the head, before the ingest.
    const ahead = t.lookAhead(ct.subarray(0, 65536));
    await turn();
    expect(looked).toEqual([ctUid]);
    expect((await t.ingestFile(CT, { lookahead: ahead })).outcome).toBe('stored');
    expect(looked).toEqual([ctUid]);
    expect(await rowCount(db, 'blob_journal')).toBe(0);

    // Another object's head: the ingest makes its own lookup and the look-ahead's entry goes.
    await clean();
    looked.length = 0;
    const d = dcmjs.data.DicomMessage.readFile(ct.buffer.slice(ct.byteOffset, ct.byteOffset + ct.length));
    d.dict['00080018'].Value = ['1.2.3.4.5.6.7.8.10'];
    d.meta['00020003'].Value = ['1.2.3.4.5.6.7.8.10'];
    const stale = t.lookAhead(Buffer.from(d.write()).subarray(0, 65536));
    expect((await t.ingestFile(CT, { lookahead: stale })).outcome).toBe('stored');
    expect(looked).toEqual(['1.2.3.4.5.6.7.8.10', ctUid]);
    expect(await journalEmpty()).toBe(true);

    // Never used (the transfer failed before the ingest): its entry is made, then dropped on release.
    const unused = t.lookAhead(ct.subarray(0, 65536));
    for (let i = 0; i < 100 && (await rowCount(db, 'blob_journal')) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await rowCount(db, 'blob_journal')).toBe(1);
    unused.release();
    expect(await journalEmpty()).toBe(true);
    // Released before it read the head: nothing is looked up or journaled at all.
    looked.length = 0;
    t.lookAhead(ct.subarray(0, 65536)).release();
    await turn();
    expect(looked).toEqual([]);
    expect(await rowCount(db, 'blob_journal')).toBe(0);
    // A head without the UIDs, and a principal who may write nowhere: no lookup at all.
    looked.length = 0;
    t.lookAhead(ct.subarray(0, 200)).release();
    svc.ingest.openTransfer(principal('R', [[deptA, 'reader']]), { via: 'dimse', source: 'R' }).lookAhead(ct.subarray(0, 65536)).release();
    await turn();
    expect(looked).toEqual([]);
    await t.end();
  });

  it("a look-ahead's attributes, read from the head while the rest arrived (issue 13), are stored only when the file starts with that head", async () => {
    await clean();
    const svc = await coreServices(db, store);
    const t = svc.ingest.openTransfer(principal('CT', [[deptA, 'writer']]), { via: 'dimse', source: 'CT' });
    const ct = fs.readFileSync(CT);
    const named = (name: string) => {
      const d = dcmjs.data.DicomMessage.readFile(ct.buffer.slice(ct.byteOffset, ct.byteOffset + ct.length));
      d.dict['00100010'].Value = [{ Alphabetic: name }];
      return Buffer.from(d.write());
    };
    // Same length, same UIDs, another patient name: the look-ahead read "WRONG^HEAD".
    const file = named('RIGHT^FILE');
    const other = named('WRONG^HEAD');
    expect(other.length).toBe(file.length);
    const ingest = async (bytes: Buffer, head: Buffer) => {
      const f = path.join(tmp, `la-${Math.random()}.dcm`);
      fs.writeFileSync(f, bytes, { mode: 0o600 });
      const ahead = t.lookAhead(head);
      const r = await t.ingestFile(f, { spooled: { size: bytes.length, sha256: sha256(bytes), head: bytes.subarray(0, 65536) }, lookahead: ahead });
      fs.rmSync(f, { force: true });
      return r;
    };
    const name = async () => (await db('studies').first('patient_name')).patient_name;
    expect((await ingest(file, other.subarray(0, 65536))).outcome).toBe('stored');
    expect(await name()).toBe('RIGHT^FILE');
    await clean();
    expect((await ingest(file, file.subarray(0, 65536))).outcome).toBe('stored');
    expect(await name()).toBe('RIGHT^FILE');
    await t.end();
  });

  it('a crash between upload and commit leaves a journaled blob, which the sweeper removes (and never an in-flight one)', async () => {
    await clean();
    // The "crash": the row never commits and the immediate cleanup fails too.
    const repo = createIngestRepo(db);
    const failingRepo = { ...repo, insert: async () => { throw new Error('process died'); } };
    const stuckStore: BlobStore = { ...store, delete: async () => { throw new Error('store unreachable'); } };
    const svc = await coreServices(db, stuckStore, { ingestRepo: failingRepo });
    await expect(svc.ingest.ingestFile(principal('CT', [[deptA, 'writer']]), CT, { via: 'dimse' })).rejects.toThrow();
    expect(await allKeys(store)).toHaveLength(1); // orphaned for now…
    expect(await rowCount(db, 'blob_journal')).toBe(1); // …but journaled
    const journal = createBlobJournalRepo(db);
    // An entry younger than the grace period might be an upload in flight elsewhere: untouched.
    expect(await sweepBlobJournal({ repo: journal, blobs: store })).toEqual({ deleted: 0, kept: 0, failed: 0 });
    expect(await allKeys(store)).toHaveLength(1);
    expect(await sweepBlobJournal({ repo: journal, blobs: store }, { minAgeMs: 0 })).toEqual({ deleted: 1, kept: 0, failed: 0 });
    expect(await allKeys(store)).toEqual([]);
    expect(await rowCount(db, 'blob_journal')).toBe(0);
  });

  it('a delete whose blob removal fails is finished by the sweeper; a referenced blob is never swept', async () => {
    await clean();
    const svc = await coreServices(db, store);
    const admin = principal('ADMIN', [[deptA, 'admin']]);
    const r = await svc.ingest.ingestFile(principal('CT', [[deptA, 'writer']]), CT, { via: 'dimse' });
    const stuckStore: BlobStore = { ...store, delete: async () => { throw new Error('store unreachable'); } };
    const { deletion } = (await coreServices(db, stuckStore)).deps;
    expect((await deletion.delete(admin, { studyUid: r.studyUid })).blobFailures).toBe(1);
    expect(await rowCount(db, 'instances')).toBe(0);
    expect(await allKeys(store)).toHaveLength(1);
    const journal = createBlobJournalRepo(db);
    // Delete entries are due at once.
    expect(await sweepBlobJournal({ repo: journal, blobs: store })).toEqual({ deleted: 1, kept: 0, failed: 0 });
    expect(await allKeys(store)).toEqual([]);
    // A journal entry for a blob that a committed row references is dropped, the blob kept.
    const again = await svc.ingest.ingestFile(principal('CT', [[deptA, 'writer']]), CT, { via: 'dimse' });
    const [{ object_key: key }] = await db('instances').select('object_key').where({ sop_instance_uid: again.sopInstanceUid });
    await db('blob_journal').insert({ object_key: key, reason: 'delete' });
    expect(await sweepBlobJournal({ repo: journal, blobs: store })).toEqual({ deleted: 0, kept: 1, failed: 0 });
    expect(await allKeys(store)).toEqual([key]);
  });

  it('concurrent ingest of the same instance by two callers stores it once', async () => {
    await clean();
    // Both callers pass the "already stored?" check before either inserts.
    const repo = createIngestRepo(db);
    let waiting: (() => void)[] = [];
    const gated = {
      ...repo,
      async lookup(q: Parameters<typeof repo.lookup>[0]) {
        const r = await repo.lookup(q);
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          if (waiting.length === 2) { waiting.forEach((f) => f()); waiting = []; }
        });
        return r;
      },
    };
    const svc = await coreServices(db, store, { ingestRepo: gated });
    const results = await Promise.all([
      svc.ingest.ingestFile(principal('CT1', [[deptA, 'writer']]), CT, { via: 'dimse' }),
      svc.ingest.ingestFile(principal('CT2', [[deptA, 'writer']]), CT, { via: 'dicomweb' }),
    ]);
    expect(results.map((r) => r.outcome).sort()).toEqual(['duplicate', 'stored']);
    expect(await rowCount(db, 'instances')).toBe(1);
    expect(await allKeys(store)).toHaveLength(1);
  });

  it('ingestStream caps the size and leaves nothing behind', async () => {
    await clean();
    const svc = await coreServices(db, store, { maxObjectBytes: 10_000 });
    await expectRefused(svc.ingest.ingestStream(principal('CT', [[deptA, 'writer']]), fs.createReadStream(CT), { via: 'dicomweb' }), 'too-large');
    await expectRefused(svc.ingest.ingestStream(principal('CT', [[deptA, 'writer']]), Readable.from([Buffer.alloc(200)]), { via: 'dicomweb' }), 'invalid', 'not-part10');
    expect(fs.readdirSync(svc.tmpDir)).toEqual([]);
    expect(await allKeys(store)).toEqual([]);
  });

  it('ingestStream of a body that breaks at once leaves no spool file: the removal waits for the file being created', async () => {
    // The spool file is created on the thread pool (lib/batched-file.ts); pipeline() rejects
    // on the body's error without waiting for the writer's own teardown. A removal that ran
    // then found nothing, and the file appeared after it (a STOW-RS part cut short).
    await clean();
    const svc = await coreServices(db, store);
    for (let i = 0; i < 20; i++) {
      const broken = new Readable({
        read() {
          this.destroy(new Error('part ended early'));
        },
      });
      await expect(svc.ingest.ingestStream(principal('CT', [[deptA, 'writer']]), broken, { via: 'dicomweb' })).rejects.toThrow();
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(fs.readdirSync(svc.tmpDir)).toEqual([]);
  });
});

// Issue 13: a new instance's rows go in as ONE autocommit statement; every other case
// (duplicate, conflict, another department's study) rolls that statement back whole and
// takes the transaction, which tells why. On both databases.
for (const dbu of databasesUnderTest()) {
  describe(`ingest rows: one statement or the transaction (${dbu.name})`, () => {
    let db: Db;
    let close: () => Promise<void>;
    let deptA: number;
    let deptB: number;
    const sqls: string[] = [];
    const record = (q: { sql: string }) => sqls.push(q.sql);
    let n = 0;
    const row = (o: { study: string; series: string; sop?: string; dept?: number; sha?: string }) => ({
      departmentId: o.dept ?? deptA,
      study: { uid: o.study, columns: { patient_id: 'P1', study_date: '20260101' }, attributes: { '00100020': { vr: 'LO', Value: ['P1'] } } },
      series: { uid: o.series, columns: { modality: 'CT', series_number: 1 }, attributes: {} },
      instance: {
        sopInstanceUid: o.sop ?? `1.2.3.9.${++n}`,
        sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        objectKey: `objects/aa/bb/key${++n}`,
        size: 10,
        sha256: o.sha ?? 'a'.repeat(64),
        metadata: {},
      },
    });
    const insert = async (r: ReturnType<typeof row>) => {
      await db('blob_journal').insert({ object_key: r.instance.objectKey, reason: 'ingest' });
      sqls.length = 0;
      return createIngestRepo(db).insert(r);
    };
    const transactions = () => sqls.filter((s) => /^begin/i.test(s.trim())).length;

    beforeAll(async () => {
      ({ db, close } = await dbu.open());
      await db.raw('TRUNCATE studies, series, instances, blob_journal RESTART IDENTITY CASCADE');
      deptA = await createDepartment(db, 'RowsA');
      deptB = await createDepartment(db, 'RowsB');
      db.on('query', record);
    });
    afterAll(async () => {
      db?.off('query', record);
      await close?.();
    });

    it('a new study, then a new series of it, each in one statement with its journal entry dropped', async () => {
      const first = row({ study: '1.2.3.100', series: '1.2.3.100.1' });
      expect(await insert(first)).toEqual({ result: 'inserted' });
      expect(sqls).toHaveLength(1);
      expect(transactions()).toBe(0);
      const second = row({ study: '1.2.3.100', series: '1.2.3.100.2' });
      expect(await insert(second)).toEqual({ result: 'inserted' });
      expect(sqls).toHaveLength(1);
      const third = row({ study: '1.2.3.100', series: '1.2.3.100.2' });
      expect(await insert(third)).toEqual({ result: 'inserted' });
      expect(sqls).toHaveLength(1);
      expect(await rowCount(db, 'studies')).toBe(1);
      expect(await rowCount(db, 'series')).toBe(2);
      expect(await rowCount(db, 'instances')).toBe(3);
      expect(await rowCount(db, 'blob_journal')).toBe(0);
      const [st] = await db('studies').where({ study_uid: '1.2.3.100' });
      expect(st).toMatchObject({ patient_id: 'P1', study_date: '20260101' });
      expect(Number(st.department_id)).toBe(deptA);
      expect(st.attributes).toEqual({ '00100020': { vr: 'LO', Value: ['P1'] } });
    });

    it('the same SOP Instance UID: same bytes is a duplicate, other bytes a conflict; nothing new stays', async () => {
      const orig = row({ study: '1.2.3.200', series: '1.2.3.200.1', sop: '1.2.3.200.1.1' });
      expect(await insert(orig)).toEqual({ result: 'inserted' });
      const before = { studies: await rowCount(db, 'studies'), series: await rowCount(db, 'series'), instances: await rowCount(db, 'instances') };
      expect(await insert(row({ study: '1.2.3.200', series: '1.2.3.200.1', sop: '1.2.3.200.1.1' }))).toEqual({ result: 'duplicate' });
      expect(transactions()).toBe(1); // the statement rolled back, the transaction told why
      expect(await insert(row({ study: '1.2.3.200', series: '1.2.3.200.1', sop: '1.2.3.200.1.1', sha: 'b'.repeat(64) }))).toEqual({ result: 'conflict', reason: 'sop-instance-conflict' });
      // Under a new study and series: the statement created both before the instance failed, and rolled back.
      expect(await insert(row({ study: '1.2.3.201', series: '1.2.3.201.1', sop: '1.2.3.200.1.1', sha: 'b'.repeat(64) }))).toEqual({ result: 'conflict', reason: 'sop-instance-conflict' });
      expect({ studies: await rowCount(db, 'studies'), series: await rowCount(db, 'series'), instances: await rowCount(db, 'instances') }).toEqual(before);
    });

    it("another department's study and a series of another study are refused, nothing new stays", async () => {
      expect(await insert(row({ study: '1.2.3.300', series: '1.2.3.300.1' }))).toEqual({ result: 'inserted' });
      const before = { studies: await rowCount(db, 'studies'), series: await rowCount(db, 'series'), instances: await rowCount(db, 'instances') };
      expect(await insert(row({ study: '1.2.3.300', series: '1.2.3.300.9', dept: deptB }))).toEqual({ result: 'conflict', reason: 'study-in-other-department' });
      expect(transactions()).toBe(1);
      // The series exists under 1.2.3.300; a new study claiming it: the new study does not stay either.
      expect(await insert(row({ study: '1.2.3.301', series: '1.2.3.300.1' }))).toEqual({ result: 'conflict', reason: 'series-in-other-study' });
      expect({ studies: await rowCount(db, 'studies'), series: await rowCount(db, 'series'), instances: await rowCount(db, 'instances') }).toEqual(before);
      // The refused rows' journal entries stay for the core to drop with their blobs.
      expect(await rowCount(db, 'blob_journal')).toBe(5);
    });
  });
}

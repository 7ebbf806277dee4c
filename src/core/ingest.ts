// C-STORE and STOW-RS land here (ARCHITECTURE.md rule 6):
// authorize → spool → parse/validate → blob (server-generated key) → rows in one
// transaction → audit. On any failure after the blob is written, the blob is
// deleted again, so there is never a blob without a row nor a row without a blob
// (a database outage mid-transaction keeps it journaled instead: see the insert below).
// The received bytes are stored unchanged, except an executable preamble, which is
// zeroed (CVE-2019-11687) and audited.

import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assertCan, isEmptyScope, scope } from './access.js';
import type { AuditDoor, AuditLog } from './audit.js';
import { createStoreTransfer, type StoreTransfer } from './audit-transfer.js';
import { conflict, forbidden, invalid, isTresorError, tooLarge } from './errors.js';
import { firstInt, firstString, pick, toDicomJson, type DicomJson } from './dicom/json.js';
import { SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS, TAG } from './dicom/levels.js';
import { parseHead, parsePart10File, type ParsedHead, type ParsedObject } from './dicom/parse.js';
import { peekInstanceUids } from './dicom/peek.js';
import { inspectPreamble, PREAMBLE_LENGTH } from './dicom/part10.js';
import { TS } from './dicom/transfer-syntaxes.js';
import { isValidUid } from './dicom/uids.js';
import { batchedFileStream } from '../lib/batched-file.js';
import { fsyncFile, removeIfPresent } from '../lib/fs-atomic.js';
import { HeadKeeper } from '../lib/head-keeper.js';
import type { Principal } from './principal.js';
import type { BlobStore, PutResult } from './ports/blob-store.js';
import { newObjectKey } from './ports/object-keys.js';

export interface IngestOptions {
  /** Department for a new study; needed only when the principal may write to several. */
  departmentId?: number;
  source?: string;
  via: 'dimse' | 'dicomweb';
  /** STOW-RS POST /studies/{study} (PS3.18 §10.5.1): only instances of this study are stored. */
  expectedStudyUid?: string;
  /**
   * The file is a spool file of the door's, which the core may move into the blob store
   * (BlobStore.adopt) instead of copying; size and SHA-256 of the whole file, computed
   * while it was written, and optionally its first bytes (`head`, which the parse then
   * does not read back). The caller still removes the path afterwards (absent is fine).
   */
  spooled?: Spooled;
  /**
   * ingestStream: called once every byte of `body` is in the spool file, before it is
   * parsed and stored. A door that reads several objects from one stream (STOW-RS) may
   * go on reading the next one from then on.
   */
  onSpooled?: () => void;
  /** What IngestTransfer.lookAhead started for this object while it was arriving. */
  lookahead?: Lookahead;
}

/**
 * A lookup started from an object's first bytes (IngestTransfer.lookAhead). Opaque to
 * the door, which passes it to ingestFile, or releases it when the object never gets
 * there (refused, failed, aborted); releasing one that was used does nothing.
 */
export interface Lookahead {
  release(): void;
}

/** What a door learned while it wrote a spool file. */
export interface Spooled extends PutResult {
  /** The file's first bytes (any length; lib/head-keeper.ts keeps them as the bytes go by). */
  head?: Buffer;
}

export interface IngestResult {
  outcome: 'stored' | 'duplicate';
  sopInstanceUid: string;
  sopClassUid: string;
  studyUid: string;
  seriesUid: string;
  transferSyntaxUid: string;
  warnings: string[];
  /** Bytes written to the blob store for this instance: 0 for a duplicate (metrics). */
  storedBytes: number;
}

export interface IngestService {
  /** One instance, audited as a transfer of its own (one `store` row). */
  ingestStream(p: Principal, body: Readable, opts: IngestOptions): Promise<IngestResult>;
  /** `part10Path` is a complete Part 10 file; the caller deletes it afterwards. One `store` row. */
  ingestFile(p: Principal, part10Path: string, opts: IngestOptions): Promise<IngestResult>;
  /**
   * Several instances audited as one transfer (PS3.15 A.5.3.10): a STOW-RS request or a
   * C-STORE association. One `store` row when `end()` is called (core/audit-transfer.ts).
   */
  openTransfer(p: Principal, door: AuditDoor): IngestTransfer;
}

export interface IngestTransfer {
  ingestStream(body: Readable, opts: Omit<IngestOptions, 'via' | 'source'>): Promise<IngestResult>;
  ingestFile(part10Path: string, opts: Omit<IngestOptions, 'via' | 'source'>): Promise<IngestResult>;
  /**
   * The door has an object's first bytes (lib/head-keeper.ts) while the rest is still
   * arriving: the core starts the lookup and journal entry that ingestFile would make
   * after the last byte (issue 13: one round trip and one commit off a C-STORE's answer).
   * Only a hint: ingestFile uses it when the object's parsed UIDs are the ones looked up.
   */
  lookAhead(head: Buffer): Lookahead;
  /** The door refused one instance before the core saw it (not a Part 10 part, unsupported SOP class…). */
  refused(reason: string): void;
  end(details?: Record<string, unknown>): Promise<void>;
}

/** What a new instance row needs. */
export interface NewInstance {
  departmentId: number;
  study: { uid: string; columns: StudyColumns; attributes: DicomJson };
  series: { uid: string; columns: SeriesColumns; attributes: DicomJson };
  instance: {
    sopInstanceUid: string;
    sopClassUid: string;
    instanceNumber?: number;
    transferSyntaxUid: string;
    objectKey: string;
    size: number;
    sha256: string;
    rows?: number;
    columns?: number;
    numberOfFrames?: number;
    metadata: DicomJson;
  };
}

export interface StudyColumns {
  patient_id?: string;
  patient_name?: string;
  patient_birth_date?: string;
  patient_sex?: string;
  study_date?: string;
  study_time?: string;
  accession_number?: string;
  study_id?: string;
  study_description?: string;
  referring_physician_name?: string;
}

export interface SeriesColumns {
  modality?: string;
  series_number?: number;
  series_description?: string;
  series_date?: string;
  series_time?: string;
  body_part_examined?: string;
}

export type InsertOutcome =
  | { result: 'inserted' }
  | { result: 'duplicate' } // same SOP Instance UID, same bytes
  | { result: 'conflict'; reason: 'sop-instance-conflict' | 'study-in-other-department' | 'series-in-other-study' };

export interface IngestLookup {
  studyDepartment: number | null;
  instanceSha256: string | null;
}

/** Implemented in db/ingest.repo.ts. */
export interface IngestRepo {
  /**
   * One round trip: the department of the study (null: no such study), the sha256 of the
   * instance (null: not stored), and, committed with them, the journal entry of
   * `journalKey` (see journal()).
   */
  lookup(q: { studyUid: string; sopInstanceUid: string; journalKey: string }): Promise<IngestLookup>;
  /** Atomically: upsert study and series, insert the instance, and drop its journal entry. */
  insert(n: NewInstance): Promise<InsertOutcome>;
  /** Records, before the upload, that a blob may exist under `key` without a row (core/blob-journal.ts). */
  journal(key: string): Promise<void>;
  /** Drops the journal entry once the blob is gone. */
  unjournal(key: string): Promise<void>;
}

export interface IngestDeps {
  blobs: BlobStore;
  repo: IngestRepo;
  audit: Pick<AuditLog, 'recordAfter'>;
  tmpDir: string;
  maxObjectBytes: number;
  /** Called when deleting an orphaned blob fails (logged by the caller). */
  onCleanupError?: (err: unknown, key: string) => void;
}

export function createIngestService(d: IngestDeps): IngestService {
  async function ingestFile(t: StoreTransfer, p: Principal, file: string, opts: IngestOptions): Promise<IngestResult> {
    let parsedUids: { studyUid?: string; sopInstanceUid?: string } = {};
    // A spool file the store will adopt is fsynced now, in the thread pool, while this
    // thread parses it and asks the database: the bytes are on disk before any success
    // goes out (adopt() waits for it), without the fsync on the critical path (issue 13).
    const adoptable = opts.spooled !== undefined && d.blobs.adopt !== undefined;
    const synced = adoptable ? fsyncFile(file).then(() => true, () => false) : undefined;
    const ahead = opts.lookahead instanceof EarlyLookup ? opts.lookahead : undefined;
    try {
      // Deny early and cheaply: a principal with no write role anywhere learns nothing.
      if (isEmptyScope(scope(p, 'write'))) throw forbidden();

      const size = opts.spooled?.size ?? (await fsp.stat(file)).size;
      if (size > d.maxObjectBytes) throw tooLarge('object-too-large', `Objects above ${d.maxObjectBytes} bytes are not accepted.`);

      const parsed = await parsePart10File(file, opts.spooled?.head ? { size, head: opts.spooled.head, parsedHead: await ahead?.parsedHead } : undefined);
      const v = validate(parsed);
      parsedUids = { studyUid: v.studyUid, sopInstanceUid: v.sopInstanceUid };
      if (opts.expectedStudyUid !== undefined && v.studyUid !== opts.expectedStudyUid) {
        throw invalid('study-uid-mismatch', 'The instance does not belong to the study in the request URL.');
      }
      const zeroPreamble = inspectPreamble(parsed.preamble) === 'executable';

      // One round trip: what is already stored, and the journal entry of the blob this
      // instance gets if it is new (core/blob-journal.ts). From here until the row commits,
      // a crash leaves a journaled blob, which the sweeper removes. Made while the object
      // arrived when the door asked for it with the same UIDs (lookAhead).
      const early = await ahead?.takeFor(v.studyUid, v.sopInstanceUid);
      const key = early?.key ?? newObjectKey();
      const found = early ? await early.found : await d.repo.lookup({ studyUid: v.studyUid, sopInstanceUid: v.sopInstanceUid, journalKey: key });
      let rowWith: ReturnType<typeof buildRow>;
      try {
        const departmentId = departmentFor(p, found.studyDepartment, opts.departmentId);
        if (found.instanceSha256 !== null) {
          // Only a re-send needs the hash before storing; a new instance gets it from the
          // spooling (adopt()) or from the store's single pass over the bytes (put()).
          const sha = opts.spooled && !zeroPreamble ? opts.spooled.sha256 : await hashStored(file, zeroPreamble);
          if (found.instanceSha256 !== sha) throw conflict('sop-instance-conflict', 'An instance with this SOP Instance UID but different content is already stored.');
          await dropJournal(key);
          t.stored({ studyUid: v.studyUid, sopClassUid: v.sopClassUid, duplicate: true, warnings: [] });
          return result('duplicate', v, parsed, []);
        }
        // The rows are built now, while the spool file's fsync (started above) is still
        // running on the thread pool, not after the store has flushed (issue 13: the CPU
        // work of the JSON is then off the time to the answer). Only the blob's size and
        // hash are filled in after.
        rowWith = buildRow(departmentId, key, parsed, v);
      } catch (e) {
        // Refused (or the rows could not be built) before anything was stored: the journal entry guards nothing.
        await dropJournal(key);
        throw e;
      }
      let storedSize: number;
      let sha256: string;
      try {
        // A spool file is moved, not copied, when the store can (the filesystem store: the
        // bytes are written once). Not when the preamble must be zeroed: then the stored
        // bytes differ from the file's.
        ({ size: storedSize, sha256 } =
          adoptable && !zeroPreamble
            ? await d.blobs.adopt!(key, file, opts.spooled!, { durable: synced })
            : await d.blobs.put(key, storedBytes(file, zeroPreamble)));
      } catch (e) {
        // An outage (timeout, S3 hung or gone) may still complete the upload inside the
        // store later, and a delete now would only wait for another timeout: leave the
        // journal entry, so the sweeper (core/blob-journal.ts) removes such a late object.
        // No row ever points to it, so a re-send stores afresh.
        if (!(isTresorError(e) && e.kind === 'unavailable')) await removeBlob(key);
        throw e;
      }
      let outcome: InsertOutcome;
      try {
        outcome = await d.repo.insert(rowWith(storedSize, sha256));
      } catch (e) {
        // The database went away during the transaction (issue 11 item 3). Its COMMIT may
        // or may not have been applied: the answer was lost, not necessarily the commit.
        // Deleting the blob now could leave a committed row without its blob, so keep it
        // and its journal entry (the row's transaction drops that entry only if it
        // committed). Either way the caller gets a retryable failure and a re-send is a
        // success: a committed row makes it a duplicate with the same bytes, otherwise it
        // is stored afresh and this blob is left for the sweeper (core/blob-journal.ts),
        // which never deletes a blob that a row references.
        if (!(isTresorError(e) && e.reason === 'database-unavailable')) await removeBlob(key);
        throw e;
      }
      if (outcome.result !== 'inserted') {
        await removeBlob(key);
        if (outcome.result === 'conflict') throw conflict(outcome.reason, conflictMessage(outcome.reason));
        // Lost a race with an identical instance: that one is stored, so is this.
        t.stored({ studyUid: v.studyUid, sopClassUid: v.sopClassUid, duplicate: true, warnings: [] });
        return result('duplicate', v, parsed, []);
      }
      const warnings: string[] = [];
      if (zeroPreamble) warnings.push('preamble-zeroed');
      if (parsed.charsetFallback) warnings.push('not-fully-decoded');
      if (v.metaMismatch) warnings.push('meta-sop-instance-mismatch');
      t.stored({ studyUid: v.studyUid, sopClassUid: v.sopClassUid, duplicate: false, warnings });
      return result('stored', v, parsed, warnings, storedSize);
    } catch (e) {
      t.failed(e, parsedUids.studyUid);
      throw e;
    } finally {
      // A look-ahead for other UIDs (or none used, after a refusal) drops its journal entry.
      ahead?.release();
      // Never leave the fsync running behind the caller, who deletes the file next.
      await synced;
    }
  }

  /** IngestTransfer.lookAhead: nothing for a principal who may write nowhere, or a head without both UIDs. */
  function lookAhead(p: Principal, head: Buffer): Lookahead {
    if (isEmptyScope(scope(p, 'write'))) return NO_LOOKAHEAD;
    const uids = peekInstanceUids(head).then((u) => (u && isValidUid(u.studyUid) && isValidUid(u.sopInstanceUid) ? u : undefined));
    return new EarlyLookup(
      uids,
      (u) => {
        const key = newObjectKey();
        return { ...u, key, found: d.repo.lookup({ ...u, journalKey: key }) };
      },
      dropJournal,
      head,
    );
  }

  /** Drops the journal entry of a key that got no blob; if that fails, the sweeper drops it (no blob: nothing to delete). */
  async function dropJournal(key: string): Promise<void> {
    try {
      await d.repo.unjournal(key);
    } catch (err) {
      d.onCleanupError?.(err, key);
    }
  }

  /** Deletes a blob no row will reference; if that fails, its journal entry stays for the sweeper. */
  async function removeBlob(key: string): Promise<void> {
    try {
      await d.blobs.delete(key);
      await d.repo.unjournal(key);
    } catch (err) {
      d.onCleanupError?.(err, key);
    }
  }

  async function ingestStream(t: StoreTransfer, p: Principal, body: Readable, opts: IngestOptions): Promise<IngestResult> {
    if (isEmptyScope(scope(p, 'write'))) {
      body.resume(); // drain; the caller decides whether to keep reading
      const e = forbidden();
      t.failed(e);
      throw e;
    }
    await fsp.mkdir(d.tmpDir, { recursive: true, mode: 0o700 });
    const tmp = path.join(d.tmpDir, `ingest-${randomUUID()}.dcm`);
    let ahead: Lookahead | undefined;
    let spool: Writable | undefined;
    try {
      // The hash in the same pass as the spool write, so the blob store can adopt the file.
      const hash = createHash('sha256');
      const head = new HeadKeeper();
      let size = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          head.add(chunk);
          size += chunk.length;
          // The lookup from the first bytes, while the rest arrives (lookAhead).
          if (!ahead && head.full()) ahead = lookAhead(p, head.bytes());
          cb(null, chunk);
        },
      });
      // Few thread-pool calls (lib/batched-file.ts): one writev per MiB received.
      spool = batchedFileStream(tmp);
      await pipeline(body, sizeCap(d.maxObjectBytes), tap, spool);
      opts.onSpooled?.();
      return await ingestFile(t, p, tmp, { ...opts, spooled: { size, sha256: hash.digest('hex'), head: head.bytes() }, lookahead: ahead });
    } finally {
      ahead?.release();
      // pipeline() rejects at the first error without waiting for the spool writer's own
      // teardown, which waits for the file's creation on the thread pool (lib/batched-file.ts):
      // removed before that, the file would appear after its removal (a STOW-RS part cut short).
      const s = spool;
      if (s && !s.closed) await new Promise<void>((resolve) => s.once('close', () => resolve()));
      await removeIfPresent(tmp);
    }
  }

  /** A transfer of one instance: its row is written before the caller hears the outcome. */
  async function single<T>(p: Principal, opts: IngestOptions, fn: (t: StoreTransfer) => Promise<T>): Promise<T> {
    const t = createStoreTransfer(d.audit, p, { via: opts.via, source: opts.source });
    try {
      return await fn(t);
    } finally {
      await t.end();
    }
  }

  return {
    ingestFile: (p, file, opts) => single(p, opts, (t) => ingestFile(t, p, file, opts)),
    ingestStream: (p, body, opts) => single(p, opts, (t) => ingestStream(t, p, body, opts)),
    openTransfer(p, door) {
      const t = createStoreTransfer(d.audit, p, door);
      const full = (o: Omit<IngestOptions, 'via' | 'source'>): IngestOptions => ({ ...o, via: door.via === 'dimse' ? 'dimse' : 'dicomweb', source: door.source });
      return {
        ingestFile: (file, o) => ingestFile(t, p, file, full(o)),
        ingestStream: (body, o) => ingestStream(t, p, body, full(o)),
        lookAhead: (head) => lookAhead(p, head),
        refused: (reason) => t.refused(reason),
        end: (details) => t.end(details),
      };
    },
  };
}

/** The department the instance's study is in (existing) or goes to (new); refuses another department's study. */
function departmentFor(p: Principal, existing: number | null, requested: number | undefined): number {
  if (existing === null) return chooseDepartment(p, requested);
  // A study belongs to one department (ARCHITECTURE.md data model): another department's
  // writer is refused, not merged.
  if (requested !== undefined && requested !== existing) throw conflict('study-in-other-department', 'This study belongs to another department.');
  try {
    assertCan(p, 'write', existing);
  } catch {
    throw conflict('study-in-other-department', 'This study belongs to another department.');
  }
  return existing;
}

function chooseDepartment(p: Principal, requested: number | undefined): number {
  if (requested !== undefined) {
    assertCan(p, 'write', requested);
    return requested;
  }
  const s = scope(p, 'write');
  if (!s.all && s.departmentIds.length === 1) return s.departmentIds[0];
  throw invalid('department-required', 'Several departments are possible: say which one the study belongs to.');
}

interface Validated {
  sopInstanceUid: string;
  sopClassUid: string;
  studyUid: string;
  seriesUid: string;
  metaMismatch: boolean;
}

function validate(o: ParsedObject): Validated {
  const s = (dict: Record<string, any>, tag: string) => {
    const v = dict[tag]?.Value?.[0];
    return typeof v === 'string' ? v.replace(/\0/g, '').trim() : undefined;
  };
  const v = {
    sopInstanceUid: s(o.dict, TAG.SOPInstanceUID),
    sopClassUid: s(o.dict, TAG.SOPClassUID),
    studyUid: s(o.dict, TAG.StudyInstanceUID),
    seriesUid: s(o.dict, TAG.SeriesInstanceUID),
  };
  for (const [name, uid] of Object.entries(v)) {
    if (uid === undefined) throw invalid('missing-attribute', `Required attribute ${name} is missing.`);
    if (!isValidUid(uid)) throw invalid('invalid-uid', `${name} is not a valid UID.`);
  }
  if (!isValidUid(o.transferSyntaxUid)) throw invalid('invalid-uid', 'The transfer syntax UID is not valid.');
  // PS3.10 §7.1: the meta header must describe the dataset it carries.
  // Some producers write a different UID there (pydicom's rtplan.dcm and rtdose.dcm
  // do); the dataset's own SOP Instance UID is the one we index, and we say so.
  const mediaInstance = s(o.meta, TAG.MediaStorageSOPInstanceUID);
  return { ...(v as Validated), metaMismatch: mediaInstance !== undefined && mediaInstance !== v.sopInstanceUid };
}

/** The rows of a new instance, but for its blob's size and SHA-256, which the returned function adds. */
function buildRow(departmentId: number, objectKey: string, o: ParsedObject, v: Validated): (size: number, sha256: string) => NewInstance {
  const metadata = toDicomJson(o.dict);
  if (o.pixelData) metadata[TAG.PixelData] = { vr: o.transferSyntaxUid === TS.implicitLittle ? 'OW' : o.pixelData.length === undefined ? 'OB' : 'OW', BulkDataURI: `bulkdata/${TAG.PixelData}` };
  const str = (tag: string) => firstString(metadata, tag);
  // ACR-NEMA era dates (1997.04.24) and times (10:30:00) would not sort in range queries.
  const date = (tag: string) => str(tag)?.replace(/^(\d{4})\.(\d{2})\.(\d{2})$/, '$1$2$3');
  const time = (tag: string) => str(tag)?.replace(/^(\d{2}):(\d{2})(?::(\d{2}))?/, (_m, h, m, s) => `${h}${m}${s ?? ''}`);
  const row = {
    departmentId,
    study: {
      uid: v.studyUid,
      attributes: pick(metadata, STUDY_LEVEL_TAGS),
      columns: {
        patient_id: str(TAG.PatientID),
        patient_name: str(TAG.PatientName),
        patient_birth_date: date(TAG.PatientBirthDate),
        patient_sex: str(TAG.PatientSex),
        study_date: date(TAG.StudyDate),
        study_time: time(TAG.StudyTime),
        accession_number: str(TAG.AccessionNumber),
        study_id: str(TAG.StudyID),
        study_description: str(TAG.StudyDescription),
        referring_physician_name: str(TAG.ReferringPhysicianName),
      },
    },
    series: {
      uid: v.seriesUid,
      attributes: pick(metadata, SERIES_LEVEL_TAGS),
      columns: {
        modality: str(TAG.Modality),
        series_number: firstInt(metadata, TAG.SeriesNumber),
        series_description: str(TAG.SeriesDescription),
        series_date: date(TAG.SeriesDate),
        series_time: time(TAG.SeriesTime),
        body_part_examined: str(TAG.BodyPartExamined),
      },
    },
    instance: {
      sopInstanceUid: v.sopInstanceUid,
      sopClassUid: v.sopClassUid,
      instanceNumber: firstInt(metadata, TAG.InstanceNumber),
      transferSyntaxUid: o.transferSyntaxUid,
      objectKey,
      rows: firstInt(metadata, TAG.Rows),
      columns: firstInt(metadata, TAG.Columns),
      numberOfFrames: firstInt(metadata, TAG.NumberOfFrames),
      metadata,
    },
  };
  return (size, sha256) => ({ ...row, instance: { ...row.instance, size, sha256 } });
}

function result(outcome: IngestResult['outcome'], v: Validated, o: ParsedObject, warnings: string[], storedBytes = 0): IngestResult {
  const { metaMismatch: _m, ...uids } = v;
  return { outcome, ...uids, transferSyntaxUid: o.transferSyntaxUid, warnings, storedBytes };
}

function conflictMessage(reason: string): string {
  switch (reason) {
    case 'sop-instance-conflict':
      return 'An instance with this SOP Instance UID but different content is already stored.';
    case 'series-in-other-study':
      return 'This series belongs to another study.';
    default:
      return 'This study belongs to another department.';
  }
}

/** The bytes we store: the file, with a zeroed preamble when it carried an executable. */
function storedBytes(file: string, zeroPreamble: boolean): Readable {
  if (!zeroPreamble) return fs.createReadStream(file);
  const out = new PassThrough();
  out.write(Buffer.alloc(PREAMBLE_LENGTH));
  const rest = fs.createReadStream(file, { start: PREAMBLE_LENGTH });
  rest.on('error', (e) => out.destroy(e));
  rest.pipe(out);
  return out;
}

async function hashStored(file: string, zeroPreamble: boolean): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of storedBytes(file, zeroPreamble)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function sizeCap(max: number): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > max) cb(tooLarge('object-too-large', `Objects above ${max} bytes are not accepted.`));
      else cb(null, chunk);
    },
  });
}

const NO_LOOKAHEAD: Lookahead = { release: () => undefined };

/** What lookAhead started: the UIDs it read from the head, the key it journaled, the lookup. */
interface Started {
  studyUid: string;
  sopInstanceUid: string;
  key: string;
  found: Promise<IngestLookup>;
}

/**
 * A lookup (and journal entry) made before the object was whole. Used once, by the
 * ingest of an object with the same UIDs; otherwise, on release, its journal entry is
 * dropped once the lookup has committed it (if that fails, the sweeper drops it: no blob
 * was ever stored under the key).
 */
class EarlyLookup implements Lookahead {
  private settled = false;
  /** The ingest is over (or never came): nothing more is worth starting. */
  private released = false;
  private readonly started: Promise<Started | undefined>;
  /**
   * The head's attributes, read while the rest of the object arrives (parse.ts parseHead),
   * once the lookup is on its way. A hint too: the parse of the file uses it only if the
   * file starts with the same bytes. Never rejects.
   */
  readonly parsedHead: Promise<ParsedHead | undefined>;
  constructor(
    uids: Promise<{ studyUid: string; sopInstanceUid: string } | undefined>,
    start: (uids: { studyUid: string; sopInstanceUid: string }) => Started,
    private readonly dropJournal: (key: string) => Promise<void>,
    head: Buffer,
  ) {
    // Nothing is started for a look-ahead released before its UIDs were read. No hint
    // when starting failed; a failed lookup is read by takeFor's caller, or ignored on
    // release: never an unhandled rejection.
    this.started = uids.then((u) => (u && !this.settled ? start(u) : undefined)).catch(() => undefined);
    void this.started.then((s) => s?.found.catch(() => undefined));
    // After the lookup's statement has gone out (setImmediate: past this turn's I/O), and
    // not for a look-ahead released (the transfer failed) by then.
    this.parsedHead = this.started
      .then((s) => (s ? new Promise<void>((r) => setImmediate(r)).then(() => (this.released ? undefined : parseHead(head))) : undefined))
      .catch(() => undefined);
  }

  /** The key and lookup, once, when they were made for these UIDs. */
  async takeFor(studyUid: string, sopInstanceUid: string): Promise<{ key: string; found: Promise<IngestLookup> } | undefined> {
    const s = await this.started;
    if (this.settled || !s || studyUid !== s.studyUid || sopInstanceUid !== s.sopInstanceUid) return undefined;
    this.settled = true;
    return { key: s.key, found: s.found };
  }

  release(): void {
    this.released = true;
    if (this.settled) return;
    this.settled = true;
    // A failed lookup committed nothing (one statement), so there is no entry to drop.
    void this.started.then((s) => s?.found.then(() => this.dropJournal(s.key), () => undefined));
  }
}

// What C-GET and C-MOVE share (PS3.4 C.4.2, C.4.3): turning the identifier into a
// retrieve request for the core, choosing a presentation context per instance,
// streaming the stored bytes (or a transcoded copy), and the sub-operation loop
// with its pending responses, C-CANCEL and final counts.

import dimse from 'dcmjs-dimse';
import { DECODABLE_TRANSFER_SYNTAXES, NATIVE_TRANSFER_SYNTAXES } from '../core/dicom/transfer-syntaxes.js';
import { isValidUid } from '../core/dicom/uids.js';
import { isTresorError } from '../core/errors.js';
import type { Principal } from '../core/principal.js';
import type { Exchange, SubOperationCounts } from './exchange.js';
import { identifierToJson, isLevelAllowed, queryLevel, stringValues } from './identifier.js';
import { PcResult, type NegotiatedContext } from './protocol/negotiation.js';
import { openDataset } from './part10-reader.js';
import type { DimseDeps, RetrieveRequest, StoredInstance } from './services.js';
import { shapeOfMetadata } from '../core/dicom/pixels/pixel-bounds.js';
import { DimseStatus, type StatusAnswer } from './status.js';

const { Dataset } = dimse;

// The registry's decodable set is dcmjs-codecs' table (what the codec children run,
// core/dicom/pixels/pixel-codec.ts): the same set DICOMweb's transcoder checks.
const NATIVE = NATIVE_TRANSFER_SYNTAXES;
const DECODABLE = DECODABLE_TRANSFER_SYNTAXES;

/**
 * We only transcode towards a native (uncompressed) syntax: decoding loses nothing
 * that the stored object had, whereas encoding to a lossy syntax would.
 */
export function canTranscode(from: string, to: string): boolean {
  return from !== to && NATIVE.has(to) && DECODABLE.has(from);
}

/** The identifier of a C-GET/C-MOVE as a core retrieve request (PS3.4 C.4.2.2.1 unique keys), or why not. */
export function retrieveRequestFrom(ex: Exchange, model: 'patient' | 'study'): RetrieveRequest | StatusAnswer {
  const id = identifierToJson(ex.request.getDataset());
  const level = queryLevel(id);
  const bad = (comment: string): StatusAnswer => ({ status: DimseStatus.IdentifierDoesNotMatchSopClass, comment });
  if (!isLevelAllowed(level, model)) return bad('invalid-query-retrieve-level');
  const patientIds = stringValues(id, '00100020');
  const studyUids = stringValues(id, '0020000D');
  const seriesUids = stringValues(id, '0020000E');
  const sopInstanceUids = stringValues(id, '00080018');
  if (![...studyUids, ...seriesUids, ...sopInstanceUids].every(isValidUid)) return bad('invalid-uid');
  if (patientIds.some((p) => /[*?\\]/.test(p)) || patientIds.length > 1) return bad('invalid-patient-id');
  const req: RetrieveRequest = { level };
  if (patientIds.length) req.patientId = patientIds[0];
  switch (level) {
    case 'PATIENT':
      if (!req.patientId) return bad('patient-id-required');
      break;
    case 'STUDY':
      if (!studyUids.length) return bad('study-instance-uid-required');
      req.studyUids = studyUids;
      break;
    case 'SERIES':
      if (!seriesUids.length || (model === 'patient' && studyUids.length !== 1) || studyUids.length > 1) return bad('series-instance-uid-required');
      if (studyUids.length) req.studyUids = studyUids;
      req.seriesUids = seriesUids;
      break;
    case 'IMAGE':
      if (!sopInstanceUids.length || seriesUids.length > 1 || studyUids.length > 1) return bad('sop-instance-uid-required');
      if (studyUids.length) req.studyUids = studyUids;
      if (seriesUids.length) req.seriesUids = seriesUids;
      req.sopInstanceUids = sopInstanceUids;
      break;
  }
  return req;
}

export const isAnswer = (x: RetrieveRequest | StatusAnswer): x is StatusAnswer => 'status' in x;

/** Lists what `p` may read; "not found" and "nothing" are the same answer (ARCHITECTURE.md rule 3). */
export async function listReadable(list: (p: Principal, r: RetrieveRequest) => Promise<StoredInstance[]>, p: Principal, req: RetrieveRequest): Promise<StoredInstance[]> {
  try {
    return await list(p, req);
  } catch (e) {
    if (isTresorError(e) && e.kind === 'not-found') return [];
    throw e;
  }
}

export interface ContextChoice {
  pcId: number;
  /** Set when the stored syntax was not accepted and we transcode to this one. */
  transcodeTo?: string;
}

/** The stored syntax if an accepted context has it (byte-exact), else one we can transcode to. */
export function chooseContext(contexts: Iterable<NegotiatedContext>, inst: StoredInstance): ContextChoice | undefined {
  const candidates = [...contexts].filter((c) => c.result === PcResult.Accept && c.abstractSyntax === inst.sopClassUid && c.transferSyntax);
  const exact = candidates.find((c) => c.transferSyntax === inst.transferSyntaxUid);
  if (exact) return { pcId: exact.id };
  const other = candidates.find((c) => canTranscode(inst.transferSyntaxUid, c.transferSyntax!));
  return other ? { pcId: other.id, transcodeTo: other.transferSyntax } : undefined;
}

/**
 * The data set to send: the stored bytes as a stream, or a transcoded copy. Transcoding
 * runs in a codec child process under its limits (core/dicom/pixels/pixel-codec.ts): the
 * stored object is at most `maxTranscodeBytes`, what it decodes to at most what its
 * header promises and the decode cap; a corrupt object fails this sub-operation only.
 */
async function datasetBody(
  open: () => Promise<NodeJS.ReadableStream>,
  inst: StoredInstance,
  transcodeTo: string | undefined,
  maxTranscodeBytes: number,
  pixels: DimseDeps['pixels'],
): Promise<AsyncIterable<Buffer> | Buffer> {
  if (transcodeTo && inst.size > maxTranscodeBytes) throw new Error('too large to transcode');
  if (!transcodeTo) return (await openStored(open, inst)).body;
  // The object is read once a codec child is free (pixel-codec.ts), so waiting holds nothing.
  return pixels.transcodeDataset(shapeOfMetadata(inst.metadata), () => readDataset(open, inst, maxTranscodeBytes), inst.transferSyntaxUid, transcodeTo);
}

/** A sub-operation's presentation context and data set, made ready before its turn. */
export interface PreparedSubOperation {
  /** Undefined: no accepted context can carry it (the sub-operation fails). */
  choice?: ContextChoice;
  body(): Promise<AsyncIterable<Buffer> | Buffer>;
  /** Closes the stored object if it was opened and not (wholly) sent; safe to call twice. */
  dispose(): void;
}

/**
 * Chooses the context and, for a byte-exact send, opens the stored object and reads its
 * header. A transcode is left for its turn: it holds a codec child and the whole object.
 */
export async function prepareSubOperation(
  contexts: Iterable<NegotiatedContext>,
  inst: StoredInstance,
  open: () => Promise<NodeJS.ReadableStream>,
  maxTranscodeBytes: number,
  pixels: DimseDeps['pixels'],
): Promise<PreparedSubOperation> {
  const choice = chooseContext(contexts, inst);
  if (!choice) return { body: () => Promise.reject(new Error('no accepted presentation context')), dispose: () => undefined };
  if (choice.transcodeTo) return { choice, body: () => datasetBody(open, inst, choice.transcodeTo, maxTranscodeBytes, pixels), dispose: () => undefined };
  const opened = await openStored(open, inst);
  return { choice, body: async () => opened.body, dispose: () => opened.stream.destroy() };
}

async function openStored(open: () => Promise<NodeJS.ReadableStream>, inst: StoredInstance): Promise<{ stream: import('node:stream').Readable; body: AsyncIterable<Buffer> }> {
  const stream = (await open()) as import('node:stream').Readable;
  let opened;
  try {
    opened = await openDataset(stream);
  } catch (e) {
    stream.destroy();
    throw e;
  }
  if (opened.transferSyntaxUid !== inst.transferSyntaxUid) {
    stream.destroy();
    throw new Error('stored transfer syntax differs from the catalogue');
  }
  return { stream, body: opened.body };
}

async function readDataset(open: () => Promise<NodeJS.ReadableStream>, inst: StoredInstance, maxTranscodeBytes: number): Promise<Buffer> {
  const { stream, body } = await openStored(open, inst);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > maxTranscodeBytes) {
      stream.destroy();
      throw new Error('too large to transcode');
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks, n);
}

export type SubOpResult = 'completed' | 'warning' | 'failed';

export function classify(status: number): SubOpResult {
  if (status === DimseStatus.Success) return 'completed';
  if ((status & 0xf000) === 0xb000) return 'warning';
  return 'failed';
}

/**
 * Runs one sub-operation per instance, sending a pending response with the counts
 * after each, and the final response (PS3.4 C.4.2.3.1, C.4.3.3.1).
 */
export async function runSubOperations(ex: Exchange, instances: StoredInstance[], one: (i: StoredInstance, index: number) => Promise<SubOpResult>): Promise<SubOperationCounts & { failedUids: string[] }> {
  const counts = { remaining: instances.length, completed: 0, failed: 0, warning: 0 };
  const failedUids: string[] = [];
  for (const [index, inst] of instances.entries()) {
    if (ex.cancelled) break;
    let r: SubOpResult;
    try {
      r = await one(inst, index);
    } catch (e) {
      ex.scope.log.warn({ op: ex.service, sopInstanceUid: inst.sopInstanceUid, err: e instanceof Error ? e.message : String(e) }, 'dimse sub-operation failed');
      r = 'failed';
    }
    counts.remaining--;
    if (r === 'completed') counts.completed++;
    else if (r === 'warning') counts.warning++;
    else {
      counts.failed++;
      failedUids.push(inst.sopInstanceUid);
    }
    if (counts.remaining > 0 && !ex.cancelled) await ex.pending(ex.response(DimseStatus.Pending, { counts }));
  }
  let status: number;
  if (ex.cancelled) status = DimseStatus.Cancel;
  else if (counts.failed === 0 && counts.warning === 0) status = DimseStatus.Success;
  else if (counts.completed === 0 && counts.warning === 0) status = DimseStatus.OutOfResourcesSubOperations;
  else status = DimseStatus.SubOperationsCompleteWithFailures;
  const final = { remaining: status === DimseStatus.Cancel ? counts.remaining : undefined, completed: counts.completed, failed: counts.failed, warning: counts.warning };
  const dataset = failedUids.length ? new Dataset({ FailedSOPInstanceUIDList: failedUids.length === 1 ? failedUids[0] : failedUids }, ex.pc.transferSyntax) : undefined;
  await ex.final(ex.response(status, { counts: final, dataset, comment: status === DimseStatus.OutOfResourcesSubOperations ? 'no-sub-operation-succeeded' : undefined }));
  return { ...counts, failedUids };
}

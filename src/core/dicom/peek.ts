// The SOP Instance UID and Study Instance UID of an object from its first bytes alone,
// while the rest is still arriving (issue 13: a C-STORE's database lookup then runs
// beside its transfer). Only a hint: the full parse (parse.ts, walk.ts) decides, and
// the ingest compares its UIDs with these before using anything looked up with them.
// So it never throws and gives up (undefined) on anything unexpected.
//
// The structural walk (walk.ts) reads the element headers, over the head alone: it stops
// at the first top-level tag past (0020,000D) (PS3.5 §7.1: a data set is sorted by tag),
// and an element or item that runs past the head is "truncated", i.e. no hint.

import { datasetOffsetFromGroupLength, readFileMeta } from './part10.js';
import { walkDataset, type PositionalSource } from './walk.js';

const SOP_INSTANCE_UID = 0x00080018;
const STUDY_INSTANCE_UID = 0x0020000d;

/** Every read the walk makes lies within the head it is given (it refuses the rest as truncated). */
export const NOTHING_BEYOND: PositionalSource = { read: () => Promise.reject(new Error('beyond the head')) };

export async function peekInstanceUids(head: Buffer): Promise<{ studyUid: string; sopInstanceUid: string } | undefined> {
  try {
    const start = datasetOffsetFromGroupLength(head);
    if (start === undefined || start > head.length) return undefined;
    const ts = readFileMeta(head.subarray(0, start), start)?.transferSyntaxUid;
    if (!ts) return undefined;
    const uids: { sopInstanceUid?: string; studyUid?: string } = {};
    let whole = true;
    await walkDataset(NOTHING_BEYOND, head.length, start, ts, {
      head,
      visitTopLevel(tag, valuePos, length) {
        if (tag !== SOP_INSTANCE_UID && tag !== STUDY_INSTANCE_UID) return tag > STUDY_INSTANCE_UID;
        whole = valuePos + length <= head.length; // also false for an undefined length
        if (!whole) return true;
        const uid = head.toString('latin1', valuePos, valuePos + length).replace(/[\0 ]+$/, '');
        if (tag === SOP_INSTANCE_UID) uids.sopInstanceUid = uid;
        else uids.studyUid = uid;
        return tag === STUDY_INSTANCE_UID;
      },
    });
    return whole && uids.studyUid && uids.sopInstanceUid ? { studyUid: uids.studyUid, sopInstanceUid: uids.sopInstanceUid } : undefined;
  } catch {
    // Deflated (the walk does not read those), truncated within the head, malformed.
    return undefined;
  }
}

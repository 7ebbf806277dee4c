// One WADO request (WADO-RS, WADO-URI, rendered) as one core retrieve run: the core
// lists within the caller's scope and writes the request's one `retrieve` row
// (ARCHITECTURE.md rule 8); the route passes its resource and UIDs, and notes its counts.

import type { StoredObject } from '../../core/dicom/pixels/stream-reader.js';
import type { Principal } from '../../core/principal.js';
import type { Retrieval, RetrieveRequest, StoredInstance } from '../../core/retrieve.js';
import type { DicomwebContext } from './context.js';

export type { Retrieval };
export type UidParams = { study: string; series?: string; instance?: string };

export function retrieveRequestOf(params: UidParams): RetrieveRequest {
  return {
    level: params.instance ? 'IMAGE' : params.series ? 'SERIES' : 'STUDY',
    studyUids: [params.study],
    ...(params.series ? { seriesUids: [params.series] } : {}),
    ...(params.instance ? { sopInstanceUids: [params.instance] } : {}),
  };
}

/** Runs `fn` as one audited retrieve of `resource` (instances, metadata, frames, rendered, wado-uri…). */
export function retrieval<T>(ctx: DicomwebContext, p: Principal, params: UidParams, resource: string, fn: (r: Retrieval) => Promise<T>): Promise<T> {
  const details = {
    resource,
    ...(params.series ? { seriesUid: params.series } : {}),
    ...(params.instance ? { sopInstanceUid: params.instance } : {}),
  };
  return ctx.deps.retrieve.run(p, { via: 'dicomweb', details }, fn);
}

export function storedObject(r: Pick<Retrieval, 'open'>, row: StoredInstance): StoredObject {
  return { key: row.objectKey, size: row.size, transferSyntaxUid: row.transferSyntaxUid, metadata: row.metadata, open: () => r.open(row) };
}

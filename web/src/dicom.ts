// Study search through QIDO-RS (PS3.18 §10.6): the same core query, with the same
// department scoping, as every other door. Results are DICOM JSON (PS3.18 F.2).

import { request, seg } from './api';

type DicomJson = Record<string, { vr: string; Value?: unknown[] } | undefined>;

export interface StudyRow {
  uid: string;
  date: string;
  time: string;
  patientName: string;
  patientId: string;
  accession: string;
  description: string;
  modalities: string[];
  series: number | null;
  instances: number | null;
}

export interface StudySearch {
  patientName: string;
  patientId: string;
  from: string; // YYYY-MM-DD or ''
  to: string;
  modality: string;
  accession: string;
}

export const emptySearch: StudySearch = { patientName: '', patientId: '', from: '', to: '', modality: '', accession: '' };

export const PAGE_SIZE = 50;

const first = (ds: DicomJson, tag: string): unknown => ds[tag]?.Value?.[0];
const text = (ds: DicomJson, tag: string): string => {
  const v = first(ds, tag);
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
};
const num = (ds: DicomJson, tag: string): number | null => {
  const v = first(ds, tag);
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
};
/** PN in DICOM JSON is {Alphabetic, Ideographic, Phonetic} (PS3.18 F.2.2). */
const personName = (ds: DicomJson, tag: string): string => {
  const v = first(ds, tag) as { Alphabetic?: string; Ideographic?: string } | string | undefined;
  if (!v) return '';
  if (typeof v === 'string') return v;
  return v.Alphabetic ?? v.Ideographic ?? '';
};

export function toStudyRow(ds: DicomJson): StudyRow {
  return {
    uid: text(ds, '0020000D'),
    date: text(ds, '00080020'),
    time: text(ds, '00080030'),
    patientName: personName(ds, '00100010'),
    patientId: text(ds, '00100020'),
    accession: text(ds, '00080050'),
    description: text(ds, '00081030'),
    modalities: (ds['00080061']?.Value ?? []).filter((m): m is string => typeof m === 'string'),
    series: num(ds, '00201206'),
    instances: num(ds, '00201208'),
  };
}

/** A search term as typed → a QIDO value. Patient ID and accession match exactly unless the user typed * or ?. */
export function studyQuery(s: StudySearch, offset: number): Record<string, string | string[]> {
  const q: Record<string, string | string[]> = {
    includefield: ['StudyDescription', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances'],
    limit: String(PAGE_SIZE),
    offset: String(offset),
  };
  const name = s.patientName.trim();
  if (name) {
    // Person-name fuzzy matching (PS3.18 §8.3.4.6): case-insensitive, on the start of any part of the name.
    q.PatientName = name.replace(/,\s*/g, '^').replace(/\s+/g, ' ');
    q.fuzzymatching = 'true';
  }
  if (s.patientId.trim()) q.PatientID = s.patientId.trim();
  if (s.accession.trim()) q.AccessionNumber = s.accession.trim();
  if (s.modality) q.ModalitiesInStudy = s.modality;
  // Date range matching (PS3.4 C.2.2.2.5): "from-", "-to" or "from-to".
  const from = s.from.replace(/-/g, '');
  const to = s.to.replace(/-/g, '');
  if (from || to) q.StudyDate = from === to ? from : `${from}-${to}`;
  return q;
}

export interface StudyPage {
  rows: StudyRow[];
  /** More studies match than this page shows (QIDO Warning header, PS3.18 §8.3.4.4). */
  more: boolean;
}

export async function searchStudies(s: StudySearch, offset: number): Promise<StudyPage> {
  const res = await request('GET', '/dicomweb/studies', { accept: 'application/dicom+json', query: studyQuery(s, offset) });
  const body = res.status === 204 ? [] : ((await res.json()) as DicomJson[]);
  const rows = body.map(toStudyRow);
  const more = /\b299\b/.test(res.headers.get('warning') ?? '');
  return { rows, more };
}

export async function deleteStudy(uid: string): Promise<void> {
  await request('DELETE', `/dicomweb/studies/${seg(uid)}`);
}

/** The OHIF viewer of the same origin (/viewer/, OHIF's viewer route), authenticated by the same cookie. */
export const viewerUrl = (uid: string): string => `/viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}`;

/** A streamed ZIP of the study's DICOM files; a plain link, so the browser writes it straight to disk. */
export const zipUrl = (uid: string): string => `/console/api/studies/${seg(uid)}/zip`;

// Which attributes belong to the patient/study and to the series level
// (PS3.3 Patient, General Study, Patient Study and General Series modules;
// PS3.4 C.6.2.1 keys). They are copied from the first instance of a study or
// series into studies.attributes / series.attributes for queries at that level.

export const STUDY_LEVEL_TAGS: ReadonlySet<string> = new Set([
  '00080005', // SpecificCharacterSet (needed to interpret names)
  '00080020', '00080030', '00080050', '00080051', '00080090', '00080096', '00081030', '00081032', '00081060', '00080201',
  '0020000D', '00200010',
  '00100010', '00100020', '00100021', '00100024', '00100030', '00100032', '00100040', '00101000', '00101001', '00101002',
  '00101010', '00101020', '00101030', '00102160', '00104000', '00102180', '001021B0',
  '00321032', '00321033', '00321060', '00401012',
]);

export const SERIES_LEVEL_TAGS: ReadonlySet<string> = new Set([
  '00080021', '00080031', '00080060', '0008103E', '00081050', '00081070', '00081111', '00081090', '00080070',
  '0020000E', '00200011', '00200060', '00180015', '00185100',
  '00400244', '00400245', '00400253', '00400254', '00400260', '00400275',
]);

export const TAG = {
  SpecificCharacterSet: '00080005',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  SeriesDate: '00080021',
  StudyTime: '00080030',
  SeriesTime: '00080031',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ReferringPhysicianName: '00080090',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  BodyPartExamined: '00180015',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  StudyID: '00200010',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  Rows: '00280010',
  Columns: '00280011',
  NumberOfFrames: '00280008',
  PixelData: '7FE00010',
  MediaStorageSOPClassUID: '00020002',
  MediaStorageSOPInstanceUID: '00020003',
  TransferSyntaxUID: '00020010',
} as const;

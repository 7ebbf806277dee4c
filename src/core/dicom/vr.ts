// Value representations (PS3.5 §6.2): the one place that says which VR belongs to
// which class. The parser, the walker, the Part 10 meta reader and writer, DICOM
// JSON and query matching all read these sets.

/** Every VR of PS3.5 Table 6.2-1. */
export const ALL_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN', 'SH',
  'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);

/** Explicit VR elements with two reserved bytes and a 4-byte length (PS3.5 §7.1.2, Table 7.1-1). */
export const LONG_LENGTH_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** Binary values: bulk data in DICOM JSON (PS3.18 §F.2.7), never matched or put in identifiers. */
export const BINARY_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

export const NUMERIC_VRS: ReadonlySet<string> = new Set(['DS', 'FD', 'FL', 'IS', 'SL', 'SS', 'SV', 'UL', 'US', 'UV']);

/** PS3.4 C.2.2.2.4: wildcards apply to every VR except dates, times, numbers, binary, AT, AS and UI. */
export const WILDCARD_VRS: ReadonlySet<string> = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);

/** VRs whose values may contain a backslash; for all others it separates values (PS3.5 §6.4). */
export const SINGLE_VALUED_TEXT_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);

export const isLongLengthVr = (vr: string): boolean => LONG_LENGTH_VRS.has(vr);

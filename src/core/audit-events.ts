// One vocabulary of audit actions for both doors, and the DICOM audit event each
// maps to (PS3.15 A.5.3, event IDs from PS3.16 CID 400 "Audit Event ID", DCM coding
// scheme). A later ATNA / syslog export (PS3.15 A.5, RFC 5424) renders rows through
// this table; it never needs to rewrite how rows are written.

export interface DicomAuditEvent {
  /** Code value in the DCM scheme, e.g. '110112'. */
  code: string;
  /** Code meaning, as PS3.16 spells it. */
  meaning: string;
}

const E = (code: string, meaning: string): DicomAuditEvent => ({ code, meaning });

/** PS3.15 A.5.3.x, per action (exact names; `admin.*` and the like below). */
const BY_ACTION: Record<string, DicomAuditEvent> = {
  // A.5.3.12 Query: one per QIDO-RS request and per C-FIND request.
  query: E('110112', 'Query'),
  // A.5.3.10 DICOM Instances Transferred: one per WADO request, C-GET/C-MOVE request,
  // STOW-RS request, and per association that carried C-STOREs.
  retrieve: E('110104', 'DICOM Instances Transferred'),
  store: E('110104', 'DICOM Instances Transferred'),
  // A.5.3.8 DICOM Study Deleted.
  delete: E('110105', 'DICOM Study Deleted'),
  // A.5.3.13 User Authentication: logins, refused tokens, and associations (node and user authentication).
  login: E('110114', 'User Authentication'),
  'token.refused': E('110114', 'User Authentication'),
  association: E('110114', 'User Authentication'),
  // Browser sessions of the console and viewer: login (EventTypeCode 110122) and logout (110123).
  'session.start': E('110114', 'User Authentication'),
  'session.end': E('110114', 'User Authentication'),
  // A.5.3.11 Security Alert: security attributes changed, protocol violations.
  'password.change': E('110113', 'Security Alert'),
  'security-alert': E('110113', 'Security Alert'),
  // A.5.3.2 Audit Log Used.
  'admin.audit.read': E('110101', 'Audit Log Used'),
  // A.5.3.1 Application Activity.
  'bootstrap.admin': E('110100', 'Application Activity'),
};

/** Prefixes for whole families of actions. */
const BY_PREFIX: [string, DicomAuditEvent][] = [
  // Users, devices, roles, certificates: security configuration changes (A.5.3.11).
  ['admin.', E('110113', 'Security Alert')],
];

/** The DICOM audit event of an action, or undefined for one DICOM does not define. */
export function dicomAuditEvent(action: string): DicomAuditEvent | undefined {
  return BY_ACTION[action] ?? BY_PREFIX.find(([p]) => action.startsWith(p))?.[1];
}

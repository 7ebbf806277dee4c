-- Issue 13 item 3: multiplies three template studies ingested through STOW-RS
-- (scripts/qido-scale-timing.ts: StudyID TBIG = one 1,000-instance CT series; TCT = 2 CT
-- series of 50; TMR = a CT and an MR series of 50) into 1,000 studies in the 10 departments
-- "Scale D01".."Scale D10": 997 copies, one in five of TMR, the rest of TCT (100,900
-- instances). Copies get their own UIDs, patient, accession and date, in their columns and
-- in their DICOM JSON; object keys are the template's with a suffix (their blobs do not
-- exist: only metadata is read at scale). Only the columns of migration 001 are written,
-- as an archive from before any later migration would hold them.
BEGIN;
CREATE TEMP TABLE scale_plan ON COMMIT DROP AS
SELECT g.i,
       (SELECT id FROM studies WHERE study_id = CASE WHEN g.i % 5 = 0 THEN 'TMR' ELSE 'TCT' END) AS tmpl_id,
       (SELECT id FROM departments WHERE name = 'Scale D' || lpad(((g.i % 10) + 1)::text, 2, '0')) AS dept_id,
       '2.25.1313131313.' || (g.i + 1) AS uid,
       (ARRAY['MILLER','JOHNSON','GARCIA','NGUYEN','ERIKSSON','SMITH','MARTIN','ANDERSON','ROSSI','MEYER'])[(g.i % 10) + 1] AS pname,
       'PID' || lpad(g.i::text, 6, '0') AS pid,
       'ACC' || lpad(g.i::text, 7, '0') AS acc,
       '20' || (20 + g.i % 6) || lpad(((g.i % 12) + 1)::text, 2, '0') || lpad(((g.i % 28) + 1)::text, 2, '0') AS sdate
FROM generate_series(3, 999) AS g(i);

INSERT INTO studies (study_uid, department_id, patient_id, patient_name, patient_birth_date, patient_sex, study_date, study_time,
                     accession_number, study_id, study_description, referring_physician_name, attributes)
SELECT p.uid, p.dept_id, p.pid, p.pname, t.patient_birth_date, t.patient_sex, p.sdate, t.study_time, p.acc, p.i::text,
       t.study_description, t.referring_physician_name,
       t.attributes || jsonb_build_object(
         '0020000D', jsonb_build_object('vr', 'UI', 'Value', jsonb_build_array(p.uid)),
         '00100010', jsonb_build_object('vr', 'PN', 'Value', jsonb_build_array(jsonb_build_object('Alphabetic', p.pname))),
         '00100020', jsonb_build_object('vr', 'LO', 'Value', jsonb_build_array(p.pid)),
         '00080050', jsonb_build_object('vr', 'SH', 'Value', jsonb_build_array(p.acc)),
         '00080020', jsonb_build_object('vr', 'DA', 'Value', jsonb_build_array(p.sdate)),
         '00200010', jsonb_build_object('vr', 'SH', 'Value', jsonb_build_array(p.i::text)))
FROM scale_plan p JOIN studies t ON t.id = p.tmpl_id;

INSERT INTO series (study_id, series_uid, modality, series_number, series_description, series_date, series_time, body_part_examined, attributes)
SELECT st.id, p.uid || '.' || se.series_number, se.modality, se.series_number, se.series_description, se.series_date, se.series_time,
       se.body_part_examined,
       se.attributes || jsonb_build_object('0020000E', jsonb_build_object('vr', 'UI', 'Value', jsonb_build_array(p.uid || '.' || se.series_number)))
FROM scale_plan p JOIN studies st ON st.study_uid = p.uid JOIN series se ON se.study_id = p.tmpl_id;

INSERT INTO instances (series_id, sop_instance_uid, sop_class_uid, instance_number, transfer_syntax_uid, object_key, size, sha256,
                       rows, columns, number_of_frames, metadata)
SELECT nse.id, nse.series_uid || '.' || i.instance_number, i.sop_class_uid, i.instance_number, i.transfer_syntax_uid,
       i.object_key || '.scale' || p.i, i.size, i.sha256, i.rows, i.columns, i.number_of_frames,
       i.metadata || jsonb_build_object(
         '00080018', jsonb_build_object('vr', 'UI', 'Value', jsonb_build_array(nse.series_uid || '.' || i.instance_number)),
         '0020000D', jsonb_build_object('vr', 'UI', 'Value', jsonb_build_array(p.uid)),
         '0020000E', jsonb_build_object('vr', 'UI', 'Value', jsonb_build_array(nse.series_uid)))
FROM scale_plan p
JOIN studies nst ON nst.study_uid = p.uid
JOIN series nse ON nse.study_id = nst.id
JOIN series tse ON tse.study_id = p.tmpl_id AND tse.series_number = nse.series_number
JOIN instances i ON i.series_id = tse.id;
COMMIT;
ANALYZE studies;
ANALYZE series;
ANALYZE instances;

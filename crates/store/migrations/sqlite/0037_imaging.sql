-- The DICOM node's application entities (not health data): which calling AE titles
-- may open an association, from which address, for which campus; where C-MOVE sends
-- to them; the character set assumed when their data sets name none.
CREATE TABLE dicom_aes (
    ae_title     TEXT    PRIMARY KEY,
    campus       TEXT    NOT NULL,
    host         TEXT,
    port         INTEGER,
    description  TEXT    NOT NULL,
    charset      TEXT,
    created_at   INTEGER NOT NULL
);
-- Studies, series and instances received (health data: reached only through the FHIR
-- service's imaging door, with the caller's campus and patient limits in the SQL).
-- A study whose PatientID matched no MRN of its sending campus has patient NULL and
-- waits on the registrar's reconciliation list. `settled` is 0 while the study's
-- ImagingStudy resource lags the index.
CREATE TABLE imaging_studies (
    study_uid       TEXT    PRIMARY KEY,
    campus          TEXT    NOT NULL,
    patient         TEXT,
    patient_key     TEXT    NOT NULL,
    accession       TEXT    NOT NULL,
    study_date      TEXT    NOT NULL,
    study_time      TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    modalities      TEXT    NOT NULL,
    series_count    INTEGER NOT NULL,
    instance_count  INTEGER NOT NULL,
    source_ae       TEXT    NOT NULL,
    received_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    resource        TEXT,
    settled         INTEGER NOT NULL,
    json            TEXT    NOT NULL
);
CREATE INDEX imaging_studies_by_patient ON imaging_studies (patient, study_date);
CREATE INDEX imaging_studies_by_campus ON imaging_studies (campus, study_date);
CREATE INDEX imaging_studies_by_accession ON imaging_studies (accession);
CREATE INDEX imaging_studies_unsettled ON imaging_studies (settled);
CREATE TABLE imaging_series (
    series_uid      TEXT    PRIMARY KEY,
    study_uid       TEXT    NOT NULL,
    modality        TEXT    NOT NULL,
    series_number   INTEGER,
    description     TEXT    NOT NULL,
    body_part       TEXT    NOT NULL,
    instance_count  INTEGER NOT NULL,
    json            TEXT    NOT NULL
);
CREATE INDEX imaging_series_by_study ON imaging_series (study_uid);
CREATE TABLE imaging_instances (
    sop_uid          TEXT    PRIMARY KEY,
    series_uid       TEXT    NOT NULL,
    study_uid        TEXT    NOT NULL,
    sop_class        TEXT    NOT NULL,
    transfer_syntax  TEXT    NOT NULL,
    instance_number  INTEGER,
    frames           INTEGER NOT NULL,
    file             TEXT    NOT NULL,
    bytes            INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    json             TEXT    NOT NULL
);
CREATE INDEX imaging_instances_by_series ON imaging_instances (series_uid, instance_number);
CREATE INDEX imaging_instances_by_study ON imaging_instances (study_uid);

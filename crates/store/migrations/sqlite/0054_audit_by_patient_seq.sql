-- A patient's audit trail is read newest first by number (the portal's "who read my
-- record", the privacy officer's search by patient): the index is by (patient, seq),
-- so the newest rows are read straight from it instead of sorting every row of the
-- patient's trail, which grows with each of their own portal visits.
DROP INDEX audit_by_patient;
CREATE INDEX audit_by_patient ON audit_log (patient, seq);

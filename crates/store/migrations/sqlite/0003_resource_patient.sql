-- The patient whose compartment a resource belongs to (its own id for a Patient), so
-- reads can be attributed to a patient in the audit log without parsing the body.
ALTER TABLE resources ADD COLUMN patient TEXT;
ALTER TABLE resource_history ADD COLUMN patient TEXT;
CREATE INDEX resources_by_patient ON resources (patient);

-- Feedback may name the member of staff it is about (a Practitioner id): praise and
-- complaints about a person make their patient satisfaction on the performance sheet.
ALTER TABLE feedback ADD COLUMN practitioner TEXT;
CREATE INDEX feedback_by_campus_time ON feedback (campus, received_at);

-- A message acknowledged from the journal keeps what it mapped to: the checked FHIR
-- transaction (encrypted, like the payload) and its summary are durable before the
-- AA is sent, and the applier writes exactly that.
ALTER TABLE message_log ADD COLUMN mapped TEXT;

-- Inbound messages acknowledged from the journal (`mllp_ack = "journaled"`) wait in
-- the message log with status 'queued' until an applier of their campus has written
-- their data (after a restart too, whatever address the listener then has); the
-- campus is the one the listener maps messages for.
ALTER TABLE message_log ADD COLUMN campus TEXT;
CREATE INDEX message_log_queued ON message_log (campus, id) WHERE status = 'queued';

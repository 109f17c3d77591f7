-- The integration hub's message log: every inbound (and later outbound) HL7 message
-- with its status, timings, attempts, errors and ACK. The payload and the ACK are
-- stored encrypted (they carry identifiers and names). Inbound duplicates are found
-- by (direction, sender, control_id).
CREATE TABLE message_log (
    id BIGSERIAL PRIMARY KEY,
    direction    TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    peer         TEXT,
    sender       TEXT    NOT NULL,
    control_id   TEXT    NOT NULL,
    message_type TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    finished_at  BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 1,
    error        TEXT,
    summary      TEXT,
    payload      TEXT    NOT NULL,
    ack          TEXT
);
CREATE INDEX message_log_by_control ON message_log (direction, sender, control_id);
CREATE INDEX message_log_by_time ON message_log (received_at);

-- The outbox: one row per committed change (every version, create, update or delete),
-- written in the same transaction as the change. `seq` orders changes as they
-- committed.
CREATE TABLE outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    res_type TEXT    NOT NULL,
    res_id   TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    method   TEXT    NOT NULL,
    campus   TEXT,
    patient  TEXT,
    at       INTEGER NOT NULL
);

-- Outbound channels (HL7 v2 over MLLP, webhooks, FHIR Subscriptions). `cursor` is the
-- last outbox seq the channel has turned into deliveries.
CREATE TABLE channels (
    id             TEXT    PRIMARY KEY,
    name           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    endpoint       TEXT    NOT NULL,
    criteria       TEXT    NOT NULL,
    campus         TEXT,
    payload        TEXT,
    headers        TEXT,
    secret         TEXT,
    max_attempts   INTEGER NOT NULL,
    backoff_ms     INTEGER NOT NULL,
    max_backoff_ms INTEGER NOT NULL,
    enabled        INTEGER NOT NULL,
    cursor         INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    subscription   TEXT
);

-- Outbound deliveries are message_log rows (direction 'out'): the order key keeps one
-- patient's events in order, next_at is when the next attempt is due, seq is the
-- outbox event delivered.
ALTER TABLE message_log ADD COLUMN order_key TEXT;
ALTER TABLE message_log ADD COLUMN next_at INTEGER;
ALTER TABLE message_log ADD COLUMN seq INTEGER;
CREATE INDEX message_log_queue ON message_log (channel, status, id);

-- The outbox: one row per committed change (every version, create, update or delete),
-- written in the same transaction as the change. `seq` orders changes as they
-- committed.
CREATE TABLE outbox (
    seq      BIGSERIAL PRIMARY KEY,
    res_type TEXT    NOT NULL,
    res_id   TEXT    NOT NULL,
    version  BIGINT  NOT NULL,
    method   TEXT    NOT NULL,
    campus   TEXT,
    patient  TEXT,
    at       BIGINT  NOT NULL
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
    max_attempts   BIGINT  NOT NULL,
    backoff_ms     BIGINT  NOT NULL,
    max_backoff_ms BIGINT  NOT NULL,
    enabled        BIGINT  NOT NULL,
    cursor         BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    subscription   TEXT
);

-- Outbound deliveries are message_log rows (direction 'out'): the order key keeps one
-- patient's events in order, next_at is when the next attempt is due, seq is the
-- outbox event delivered.
ALTER TABLE message_log ADD COLUMN order_key TEXT;
ALTER TABLE message_log ADD COLUMN next_at BIGINT;
ALTER TABLE message_log ADD COLUMN seq BIGINT;
CREATE INDEX message_log_queue ON message_log (channel, status, id);

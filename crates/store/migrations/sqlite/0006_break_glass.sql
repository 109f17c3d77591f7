-- Break-the-glass: a clinician opens a patient's record outside their campuses for a
-- limited time, with a reason. Rows are never deleted; they are the privacy report.
CREATE TABLE break_glass (
    id         TEXT    PRIMARY KEY,
    actor      TEXT    NOT NULL,
    role       TEXT,
    patient    TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    client_addr TEXT
);
CREATE INDEX break_glass_by_actor ON break_glass (actor, expires_at);
CREATE INDEX break_glass_by_time ON break_glass (granted_at);

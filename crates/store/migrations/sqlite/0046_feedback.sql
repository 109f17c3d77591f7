-- Patients' feedback and complaints (患者意见与投诉): what was said, at which campus and
-- about which department, through which channel, by which patient when known; who
-- received it, the owner who answers it, the day the answer is due, and the answer.
-- An answer is written once (the row's status moves from open to answered only).
CREATE TABLE feedback (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    campus       TEXT    NOT NULL,
    department   TEXT,
    kind         TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    patient      TEXT,
    subject      TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    received_by  TEXT    NOT NULL,
    owner        TEXT,
    due_on       TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('open', 'answered')),
    reply        TEXT,
    replied_at   BIGINT,
    replied_by   TEXT
);
CREATE INDEX feedback_by_campus ON feedback (campus, status, due_on);

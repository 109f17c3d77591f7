-- Online sign-ups for the patient portal that the patient index could not match with
-- certainty: they wait for the desk, which picks the record (a code is then sent to
-- the contact given) or declines. What the person typed is kept encrypted, as one
-- sealed JSON text.
CREATE TABLE portal_signups (
    id          TEXT    PRIMARY KEY,
    details     TEXT    NOT NULL,
    made_at     BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    decided_by  TEXT,
    decided_at  BIGINT,
    patient     TEXT,
    note        TEXT
);
CREATE INDEX portal_signups_status ON portal_signups (status, made_at);

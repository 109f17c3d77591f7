-- The patient portal's activation codes: printed on the registration slip (or at the
-- desk later), one live code per patient; only the code's hash is kept. A code is
-- spent by the account it opened, and refused after too many wrong tries.
CREATE TABLE portal_activations (
    code_hash   TEXT    PRIMARY KEY,
    patient     TEXT    NOT NULL,
    campus      TEXT    NOT NULL,
    issued_by   TEXT    NOT NULL,
    issued_at   BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    used_at     BIGINT,
    username    TEXT
);
CREATE INDEX portal_activations_patient ON portal_activations (patient);
CREATE INDEX users_patient ON users (patient);
-- Family proxies: an account that acts for another patient (a parent for a child, a
-- carer for an elderly patient), with the consent it rests on; revoked, it ends at
-- once (every request checks it).
CREATE TABLE portal_proxies (
    id          TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    patient     TEXT    NOT NULL,
    relation    TEXT    NOT NULL,
    consent     TEXT    NOT NULL,
    granted_by  TEXT    NOT NULL,
    granted_at  BIGINT  NOT NULL,
    revoked_at  BIGINT,
    revoked_by  TEXT
);
CREATE INDEX portal_proxies_user ON portal_proxies (user_id, patient);
CREATE INDEX portal_proxies_patient ON portal_proxies (patient);
-- The visit a patient's satisfaction survey is about: one survey per visit.
ALTER TABLE feedback ADD COLUMN encounter TEXT;
CREATE UNIQUE INDEX feedback_by_encounter ON feedback (encounter) WHERE encounter IS NOT NULL;

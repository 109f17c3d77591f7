-- Staff (人事), linked to the person's FHIR Practitioner (one person, one record): the
-- position and professional title (职称) with the day it was conferred, the campuses
-- the person is registered to practise at (多点执业), and their licences and
-- practising certificates with expiry dates.
CREATE TABLE staff_records (
    practitioner   TEXT    PRIMARY KEY,
    position       TEXT,
    title          TEXT,
    title_since    TEXT,
    campuses       TEXT    NOT NULL,
    changed_at     BIGINT NOT NULL,
    changed_by     TEXT    NOT NULL
);
CREATE TABLE staff_licences (
    id             BIGSERIAL PRIMARY KEY,
    practitioner   TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    number         TEXT    NOT NULL,
    issuer         TEXT,
    issued_on      TEXT    NOT NULL,
    expires_on     TEXT,
    added_at       BIGINT NOT NULL,
    added_by       TEXT    NOT NULL,
    UNIQUE (kind, number)
);
CREATE INDEX staff_licences_by_person ON staff_licences (practitioner);
CREATE INDEX staff_licences_by_expiry ON staff_licences (expires_on);

-- The service desk's notifications (not health data): each is shown in its
-- recipient's inbox in the shell and, when the recipient left an address, sent by
-- email. A notification is written in the transaction of the ticket change it tells
-- of; its mail is sent after, retried until the SMTP server takes it.
CREATE TABLE ops_notifications (
    id          BIGSERIAL PRIMARY KEY,
    username    TEXT    NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT    NOT NULL,
    ticket      BIGINT,
    subject     TEXT    NOT NULL,
    link        TEXT    NOT NULL,
    read_at     BIGINT,
    email       TEXT,
    language    TEXT,
    mail_next   BIGINT,
    mail_tries  BIGINT NOT NULL,
    mail_sent   BIGINT,
    mail_error  TEXT
);
CREATE INDEX ops_notifications_by_user ON ops_notifications (username, id);
CREATE INDEX ops_notifications_mail_due ON ops_notifications (mail_next);
-- Where each user wants the desk's mail, in which language.
CREATE TABLE ops_contacts (
    username   TEXT    PRIMARY KEY,
    email      TEXT    NOT NULL,
    language   TEXT    NOT NULL,
    updated_at BIGINT NOT NULL
);

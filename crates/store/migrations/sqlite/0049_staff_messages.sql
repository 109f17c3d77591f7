-- Messages between staff (站内消息), across campuses: to one person (their Practitioner)
-- or to a department (everyone holding a role in it). Each reader's place: the last
-- message they have seen, so what is newer is unread.
CREATE TABLE staff_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sender          TEXT    NOT NULL,
    sender_name     TEXT    NOT NULL,
    to_practitioner TEXT,
    to_department   TEXT,
    body            TEXT    NOT NULL,
    sent_at         BIGINT  NOT NULL
);
CREATE INDEX staff_messages_to_practitioner ON staff_messages (to_practitioner, id);
CREATE INDEX staff_messages_to_department ON staff_messages (to_department, id);
CREATE INDEX staff_messages_by_sender ON staff_messages (sender, id);
CREATE TABLE staff_message_seen (
    username    TEXT    PRIMARY KEY,
    last_id     BIGINT  NOT NULL
);

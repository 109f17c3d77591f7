-- Announcements, news and policies (通知公告), staff data: what was published, by
-- whom, to which audience — the whole group, a campus, a department, or a role (at a
-- campus or everywhere) — until when; and who read each (read receipts, 已读回执).
CREATE TABLE announcements (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL,
    title          TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    audience       TEXT    NOT NULL,
    campus         TEXT,
    department     TEXT,
    role           TEXT,
    published_by   TEXT    NOT NULL,
    published_at   INTEGER NOT NULL,
    until          TEXT
);
CREATE INDEX announcements_by_time ON announcements (published_at);
CREATE TABLE announcement_reads (
    announcement  INTEGER NOT NULL,
    reader        TEXT    NOT NULL,
    read_at       INTEGER NOT NULL,
    PRIMARY KEY (announcement, reader)
);

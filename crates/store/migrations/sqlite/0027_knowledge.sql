-- The IT knowledge base (not health data): articles of symptom, cause and solution,
-- each edit a new version; the article row carries the current title and class so
-- lists need no join, and `version` guards against two editors at once (retiring
-- bumps it without a new text version, so `latest` counts text versions).
CREATE TABLE ops_kb_articles (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    latest     INTEGER NOT NULL,
    title      TEXT    NOT NULL,
    ci_class   TEXT,
    source     TEXT,
    status     TEXT    NOT NULL,
    author     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT    NOT NULL,
    version    INTEGER NOT NULL
);
CREATE INDEX ops_kb_articles_by_update ON ops_kb_articles (status, updated_at, id);
CREATE INDEX ops_kb_articles_by_source ON ops_kb_articles (source);
CREATE TABLE ops_kb_versions (
    article  INTEGER NOT NULL REFERENCES ops_kb_articles (id),
    version  INTEGER NOT NULL,
    title    TEXT    NOT NULL,
    symptom  TEXT    NOT NULL,
    cause    TEXT    NOT NULL,
    solution TEXT    NOT NULL,
    ci_class TEXT,
    author   TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    note     TEXT,
    PRIMARY KEY (article, version)
);
-- The current version's words, segmented by the caller (jieba for Chinese) and
-- joined by spaces, so FTS5's unicode61 tokenizer finds two-character words (a
-- trigram index cannot). rowid = the article's id; its status and class are kept
-- here too (not indexed), so a search filters and ranks without a join.
CREATE VIRTUAL TABLE ops_kb_search USING fts5(tokens, status UNINDEXED, ci_class UNINDEXED, tokenize = 'unicode61');

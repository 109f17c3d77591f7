-- The IT knowledge base (not health data): articles of symptom, cause and solution,
-- each edit a new version; the article row carries the current title and class so
-- lists need no join, and `version` guards against two editors at once (retiring
-- bumps it without a new text version, so `latest` counts text versions).
CREATE TABLE ops_kb_articles (
    id         BIGSERIAL PRIMARY KEY,
    latest     BIGINT NOT NULL,
    title      TEXT   NOT NULL,
    ci_class   TEXT,
    source     TEXT,
    status     TEXT   NOT NULL,
    author     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT   NOT NULL,
    version    BIGINT NOT NULL
);
CREATE INDEX ops_kb_articles_by_update ON ops_kb_articles (status, updated_at, id);
CREATE INDEX ops_kb_articles_by_source ON ops_kb_articles (source);
CREATE TABLE ops_kb_versions (
    article  BIGINT NOT NULL REFERENCES ops_kb_articles (id),
    version  BIGINT NOT NULL,
    title    TEXT   NOT NULL,
    symptom  TEXT   NOT NULL,
    cause    TEXT   NOT NULL,
    solution TEXT   NOT NULL,
    ci_class TEXT,
    author   TEXT   NOT NULL,
    at       BIGINT NOT NULL,
    note     TEXT,
    PRIMARY KEY (article, version)
);
-- The current version's words, segmented by the caller (jieba for Chinese) and
-- joined by spaces, as a `simple` tsvector (no stemming, no stop words) with a GIN
-- index, so two-character words are found (a trigram index cannot); its status and
-- class are kept here too, so a search filters and ranks without a join. The index
-- takes each article at once (fastupdate off): with the pending list on, thousands
-- of new articles waited there until a vacuum and the planner scanned the table.
CREATE TABLE ops_kb_search (
    article  BIGINT   PRIMARY KEY REFERENCES ops_kb_articles (id),
    status   TEXT     NOT NULL,
    ci_class TEXT,
    tokens   TSVECTOR NOT NULL
);
CREATE INDEX ops_kb_search_tokens ON ops_kb_search USING GIN (tokens) WITH (fastupdate = off);

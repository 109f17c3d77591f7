-- What a version of an article was written from (`incident:12` when an engineer
-- improved the article with what a resolved ticket taught), beside the article's own
-- source (what its first version was written from).
ALTER TABLE ops_kb_versions ADD COLUMN source TEXT;

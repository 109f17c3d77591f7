-- A resource's body is stored once: in the history row of its version. The current
-- table keeps the small columns searches sort and filter on, so its pages stay dense
-- (a COUNT over thousands of matches reads a few pages, not thousands of bodies), and
-- every write stores its body once instead of twice.
ALTER TABLE resources DROP COLUMN body;

-- When a user last completed a login (the second factor accepted), for the
-- administrators' account list. NULL: never.
ALTER TABLE users ADD COLUMN last_login_at INTEGER;

-- What each backup run packed of the imaging folder: the instance files its index
-- named, and their bytes.
ALTER TABLE backup_runs ADD COLUMN image_files BIGINT;
ALTER TABLE backup_runs ADD COLUMN image_bytes BIGINT;

-- Follows postgres/0020_multi_device.sql.
ALTER TABLE users ADD COLUMN desktop_session_id TEXT;
ALTER TABLE inbox_cursor ADD COLUMN desktop_upto INTEGER;

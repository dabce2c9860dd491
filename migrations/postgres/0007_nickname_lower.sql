-- Case-insensitive nickname search that works for every script (SQLite's LOWER() only
-- folds ASCII): the projection stores Rust's lowercase form.
ALTER TABLE users ADD COLUMN nickname_lower TEXT NOT NULL DEFAULT '';
UPDATE users SET nickname_lower = LOWER(nickname);

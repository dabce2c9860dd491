-- New members read the history from before they joined.
ALTER TABLE chat_groups ADD COLUMN share_history BIGINT NOT NULL DEFAULT 0;

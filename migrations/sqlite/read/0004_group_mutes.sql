-- A member muted for a while: when it ends (ms); NULL with status 0: until lifted.
ALTER TABLE group_members ADD COLUMN mute_until INTEGER;
-- Only the owner speaks.
ALTER TABLE chat_groups ADD COLUMN all_muted INTEGER NOT NULL DEFAULT 0;

-- Admins help the owner run a group.
ALTER TABLE group_members ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;

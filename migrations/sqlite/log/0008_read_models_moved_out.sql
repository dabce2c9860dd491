-- Read models live in their own file (read.db) since this version, so the log's file
-- holds the log alone and its writer never waits for a read model. Older versions kept
-- them here: drop them (the projections rebuild read.db from the log).
DROP TABLE IF EXISTS projection_checkpoints;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS friends;
DROP TABLE IF EXISTS friend_requests;
DROP TABLE IF EXISTS reports;
DROP TABLE IF EXISTS messages;
DROP TABLE IF EXISTS inbox;
DROP TABLE IF EXISTS inbox_heads;
DROP TABLE IF EXISTS askanswers;
DROP TABLE IF EXISTS chat_groups;
DROP TABLE IF EXISTS group_members;
DROP TABLE IF EXISTS group_join_requests;

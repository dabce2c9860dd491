-- Blocks are the blocker's: they outlive a friendship and exist between strangers.
-- One row per (blocker, blocked); the blocks of current friends are copied over.
CREATE TABLE blocks (
    user_id     BIGINT NOT NULL,
    blocked_id  BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
INSERT INTO blocks SELECT user_id, friend_id, update_time FROM friends WHERE isblack = 1;

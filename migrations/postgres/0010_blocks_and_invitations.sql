-- Blocks are the blocker's: they outlive a friendship and exist between strangers.
-- One row per (blocker, blocked); the blocks of current friends are copied over.
CREATE TABLE blocks (
    user_id     BIGINT NOT NULL,
    blocked_id  BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
INSERT INTO blocks SELECT user_id, friend_id, update_time FROM friends WHERE isblack = 1;

-- Invitations to a group from someone who is not the invitee's friend, waiting for the
-- invitee's answer.
CREATE TABLE group_invitations (
    group_id    BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    inviter_id  BIGINT NOT NULL,
    status      TEXT   NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (user_id, group_id)
);

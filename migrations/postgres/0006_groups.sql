-- Groups, members and join requests (kept by the inbox projection, whose fan-out of
-- group system messages needs the membership).
CREATE TABLE chat_groups (
    id             BIGINT  PRIMARY KEY,
    name           TEXT    NOT NULL,
    avatar         TEXT    NOT NULL DEFAULT '',
    user_id        BIGINT  NOT NULL,
    remark         TEXT    NOT NULL DEFAULT '',
    invite_confirm BIGINT  NOT NULL DEFAULT 1,
    status         BIGINT  NOT NULL DEFAULT 1,
    create_time    BIGINT  NOT NULL,
    update_time    BIGINT  NOT NULL
);

CREATE TABLE group_members (
    group_id    BIGINT  NOT NULL,
    user_id     BIGINT  NOT NULL,
    nickname    TEXT    NOT NULL DEFAULT '',
    status      BIGINT  NOT NULL DEFAULT 1,
    create_time BIGINT  NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id, group_id);

CREATE TABLE group_join_requests (
    group_id    BIGINT  NOT NULL,
    user_id     BIGINT  NOT NULL,
    inviter_id  BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    create_time BIGINT  NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

-- Groups, members and join requests (kept by the inbox projection, whose fan-out of
-- group system messages needs the membership).
CREATE TABLE chat_groups (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL,
    avatar         TEXT    NOT NULL DEFAULT '',
    user_id        INTEGER NOT NULL,
    remark         TEXT    NOT NULL DEFAULT '',
    invite_confirm INTEGER NOT NULL DEFAULT 1,
    status         INTEGER NOT NULL DEFAULT 1,
    create_time    INTEGER NOT NULL,
    update_time    INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    nickname    TEXT    NOT NULL DEFAULT '',
    status      INTEGER NOT NULL DEFAULT 1,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id, group_id);

CREATE TABLE group_join_requests (
    group_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    inviter_id  INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

-- Tables read and written by their composite primary key become one B-tree each
-- (WITHOUT ROWID): a user's inbox rows sit together in seq order, and an insert
-- updates one tree instead of a rowid table plus its primary-key index. The rows are
-- copied as they are.

CREATE TABLE friends_new (
    user_id     INTEGER NOT NULL,
    friend_id   INTEGER NOT NULL,
    nickname    TEXT    NOT NULL DEFAULT '',
    tags        TEXT    NOT NULL DEFAULT '',
    star        INTEGER NOT NULL DEFAULT 0,
    isblack     INTEGER NOT NULL DEFAULT 0,
    lookme      INTEGER NOT NULL DEFAULT 1,
    lookhim     INTEGER NOT NULL DEFAULT 1,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (user_id, friend_id)
) WITHOUT ROWID;
INSERT INTO friends_new SELECT user_id, friend_id, nickname, tags, star, isblack, lookme,
    lookhim, create_time, update_time FROM friends;
DROP TABLE friends;
ALTER TABLE friends_new RENAME TO friends;

CREATE TABLE inbox_new (
    user_id     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    message_id  TEXT,
    kind        TEXT    NOT NULL,
    payload     TEXT,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
INSERT INTO inbox_new SELECT user_id, seq, message_id, kind, payload, create_time FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_new RENAME TO inbox;
CREATE INDEX inbox_message ON inbox (message_id);

CREATE TABLE group_members_new (
    group_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    nickname    TEXT    NOT NULL DEFAULT '',
    status      INTEGER NOT NULL DEFAULT 1,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
INSERT INTO group_members_new SELECT group_id, user_id, nickname, status, create_time
    FROM group_members;
DROP TABLE group_members;
ALTER TABLE group_members_new RENAME TO group_members;
CREATE INDEX group_members_user ON group_members (user_id, group_id);

CREATE TABLE group_join_requests_new (
    group_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    inviter_id  INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
INSERT INTO group_join_requests_new SELECT group_id, user_id, inviter_id, status, create_time
    FROM group_join_requests;
DROP TABLE group_join_requests;
ALTER TABLE group_join_requests_new RENAME TO group_join_requests;

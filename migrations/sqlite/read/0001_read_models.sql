-- The read models of the embedded store, in read.db beside the log's im.db. Every table
-- here can be dropped and rebuilt from the log (im rebuild).

-- Read models: every table here can be dropped and rebuilt from the event log.
CREATE TABLE projection_checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);

CREATE TABLE users (
    id                 INTEGER PRIMARY KEY,
    uuid               TEXT    NOT NULL UNIQUE,
    username           TEXT    NOT NULL,
    username_lower     TEXT    NOT NULL,
    nickname           TEXT    NOT NULL DEFAULT '',
    -- Rust's lowercase form: SQLite's LOWER() folds ASCII only.
    nickname_lower     TEXT    NOT NULL DEFAULT '',
    avatar             TEXT    NOT NULL DEFAULT '',
    role               TEXT    NOT NULL,
    status             INTEGER NOT NULL DEFAULT 1,
    userset            TEXT    NOT NULL,
    sex                TEXT    NOT NULL DEFAULT '',
    sign               TEXT    NOT NULL DEFAULT '',
    area               TEXT    NOT NULL DEFAULT '',
    device_fingerprint TEXT,
    device             TEXT,
    session_id         TEXT,
    last_login         INTEGER NOT NULL DEFAULT 0,
    create_time        INTEGER NOT NULL,
    update_time        INTEGER NOT NULL
);
CREATE INDEX users_username_lower ON users (username_lower);

-- Read models of the friendship streams and reports.
CREATE TABLE friends (
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
);

CREATE TABLE friend_requests (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    friend_id   INTEGER NOT NULL,
    nickname    TEXT    NOT NULL DEFAULT '',
    lookme      INTEGER NOT NULL DEFAULT 1,
    lookhim     INTEGER NOT NULL DEFAULT 1,
    status      TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);
CREATE INDEX friend_requests_to ON friend_requests (friend_id, id);
CREATE INDEX friend_requests_pair ON friend_requests (user_id, friend_id);

CREATE TABLE reports (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL,
    reported_id   INTEGER NOT NULL,
    reported_type TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    content       TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',
    create_time   INTEGER NOT NULL
);

-- Messages as senders and recipients see them (history), and each user's inbox: the
-- offline queue with a dense per-user seq.
CREATE TABLE messages (
    id            TEXT    PRIMARY KEY,
    position      INTEGER NOT NULL,
    chat_type     TEXT    NOT NULL,
    from_id       INTEGER NOT NULL,
    to_id         INTEGER NOT NULL,
    client_msg_id TEXT,
    body          TEXT    NOT NULL,
    isremove      INTEGER NOT NULL DEFAULT 0,
    create_time   INTEGER NOT NULL
);
-- One-to-one and group history: each message touches one of them.
CREATE INDEX messages_single ON messages (from_id, to_id, position) WHERE chat_type = 'single';
CREATE INDEX messages_group ON messages (to_id, position) WHERE chat_type = 'group';

CREATE TABLE inbox (
    user_id     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    message_id  TEXT,
    kind        TEXT    NOT NULL,
    -- Notices carry their payload; a message row refers to messages.body (stored once
    -- per message, not once per recipient).
    payload     TEXT,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX inbox_message ON inbox (message_id);
-- Delivery bookkeeping (not a projection of the log): every row of the user's inbox
-- up to this seq reached one of their sockets or was acked; the rows after it are
-- pending. (A user's last seq is MAX(seq), found through the primary key.)
CREATE TABLE inbox_cursor (
    user_id        INTEGER PRIMARY KEY,
    delivered_upto INTEGER NOT NULL
);

-- Auto-reply question/answer pairs.
CREATE TABLE askanswers (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    ask         TEXT    NOT NULL,
    answer      TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);
CREATE INDEX askanswers_user ON askanswers (user_id, id);

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


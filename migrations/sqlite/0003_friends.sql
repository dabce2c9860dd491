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

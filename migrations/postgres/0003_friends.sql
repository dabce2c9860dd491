-- Read models of the friendship streams and reports.
CREATE TABLE friends (
    user_id     BIGINT  NOT NULL,
    friend_id   BIGINT  NOT NULL,
    nickname    TEXT    NOT NULL DEFAULT '',
    tags        TEXT    NOT NULL DEFAULT '',
    star        BIGINT  NOT NULL DEFAULT 0,
    isblack     BIGINT  NOT NULL DEFAULT 0,
    lookme      BIGINT  NOT NULL DEFAULT 1,
    lookhim     BIGINT  NOT NULL DEFAULT 1,
    create_time BIGINT  NOT NULL,
    update_time BIGINT  NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE friend_requests (
    id          BIGINT  PRIMARY KEY,
    user_id     BIGINT  NOT NULL,
    friend_id   BIGINT  NOT NULL,
    nickname    TEXT    NOT NULL DEFAULT '',
    lookme      BIGINT  NOT NULL DEFAULT 1,
    lookhim     BIGINT  NOT NULL DEFAULT 1,
    status      TEXT    NOT NULL,
    create_time BIGINT  NOT NULL,
    update_time BIGINT  NOT NULL
);
CREATE INDEX friend_requests_to ON friend_requests (friend_id, id);
CREATE INDEX friend_requests_pair ON friend_requests (user_id, friend_id);

CREATE TABLE reports (
    id            BIGINT  PRIMARY KEY,
    user_id       BIGINT  NOT NULL,
    reported_id   BIGINT  NOT NULL,
    reported_type TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    content       TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',
    create_time   BIGINT  NOT NULL
);

-- Read models: every table here can be dropped and rebuilt from the event log.
CREATE TABLE projection_checkpoints (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);

CREATE TABLE users (
    id                 BIGINT PRIMARY KEY,
    uuid               TEXT    NOT NULL UNIQUE,
    username           TEXT    NOT NULL,
    username_lower     TEXT    NOT NULL,
    nickname           TEXT    NOT NULL DEFAULT '',
    avatar             TEXT    NOT NULL DEFAULT '',
    role               TEXT    NOT NULL,
    status             BIGINT  NOT NULL DEFAULT 1,
    userset            TEXT    NOT NULL,
    sex                TEXT    NOT NULL DEFAULT '',
    sign               TEXT    NOT NULL DEFAULT '',
    area               TEXT    NOT NULL DEFAULT '',
    device_fingerprint TEXT,
    device             TEXT,
    session_id         TEXT,
    last_login         BIGINT  NOT NULL DEFAULT 0,
    create_time        BIGINT  NOT NULL,
    update_time        BIGINT  NOT NULL
);
CREATE INDEX users_username_lower ON users (username_lower);

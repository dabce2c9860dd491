-- Follows postgres/0019_push.sql.
CREATE TABLE push_targets (
    user_id      INTEGER NOT NULL,
    provider     TEXT    NOT NULL,
    device_token TEXT    NOT NULL,
    create_time  INTEGER NOT NULL,
    PRIMARY KEY (user_id, provider, device_token)
) WITHOUT ROWID;

-- The devices each user registered for pushes (issue 15), kept by the `push` projection.
CREATE TABLE push_targets (
    user_id      BIGINT NOT NULL,
    provider     TEXT   NOT NULL,
    device_token TEXT   NOT NULL,
    create_time  BIGINT NOT NULL,
    PRIMARY KEY (user_id, provider, device_token)
);

-- Messages as senders and recipients see them (history), and each user's inbox: the
-- offline queue with a dense per-user seq.
CREATE TABLE messages (
    id            TEXT    PRIMARY KEY,
    position      BIGINT  NOT NULL,
    chat_type     TEXT    NOT NULL,
    from_id       BIGINT  NOT NULL,
    to_id         BIGINT  NOT NULL,
    client_msg_id TEXT,
    body          TEXT    NOT NULL,
    isremove      BIGINT  NOT NULL DEFAULT 0,
    create_time   BIGINT  NOT NULL
);
CREATE INDEX messages_conversation ON messages (chat_type, from_id, to_id, position);
CREATE INDEX messages_to ON messages (chat_type, to_id, position);

CREATE TABLE inbox (
    user_id     BIGINT  NOT NULL,
    seq         BIGINT  NOT NULL,
    message_id  TEXT,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    delivered   BIGINT  NOT NULL DEFAULT 0,
    create_time BIGINT  NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX inbox_message ON inbox (message_id);
CREATE INDEX inbox_pending ON inbox (user_id, delivered, seq);

CREATE TABLE inbox_heads (
    user_id  BIGINT  PRIMARY KEY,
    last_seq BIGINT  NOT NULL
);

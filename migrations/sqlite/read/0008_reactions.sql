-- Who reacted to a message with which emoji (issue 15): kept by the inbox projection,
-- which also writes the counts into the message's stored body.
CREATE TABLE message_reactions (
    message_id  TEXT    NOT NULL,
    user_id     INTEGER NOT NULL,
    emoji       TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
) WITHOUT ROWID;

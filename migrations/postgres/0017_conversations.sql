-- One row per chat per user (issue 15): the conversation list, kept by the inbox
-- projection as it gives out seqs. `last_seq` is the user's seq of the chat's newest row,
-- `read_seq` how far they read it (`ConversationRead`), `unread` the messages from others
-- after it (`mentioned`: one of them calls the user out); `peer_read_time` is, in a
-- one-to-one chat, the send time of the newest message of this user's that the other
-- party has read; `pinned` is 0 or when it was pinned, `muted` 0 or 1.
CREATE TABLE conversations (
    user_id         BIGINT NOT NULL,
    chat_type       TEXT   NOT NULL,
    chat_id         BIGINT NOT NULL,
    last_message_id TEXT,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    last_time       BIGINT NOT NULL DEFAULT 0,
    unread          BIGINT NOT NULL DEFAULT 0,
    mentioned       BIGINT NOT NULL DEFAULT 0,
    read_seq        BIGINT NOT NULL DEFAULT 0,
    peer_read_time  BIGINT NOT NULL DEFAULT 0,
    pinned          BIGINT NOT NULL DEFAULT 0,
    muted           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, chat_type, chat_id)
);
CREATE INDEX conversations_recent ON conversations (user_id, pinned, last_time);

-- Delete-for-me: the messages each user hid from themselves.
CREATE TABLE hidden_messages (
    user_id    BIGINT NOT NULL,
    message_id TEXT   NOT NULL,
    PRIMARY KEY (user_id, message_id)
);

-- The chats that already exist, as the projection would have kept them: every message
-- from someone else counts as unread (nothing was marked read before this table).
INSERT INTO conversations (user_id, chat_type, chat_id, last_message_id, last_seq, last_time, unread, mentioned)
SELECT t.user_id, t.chat_type, t.chat_id,
       (SELECT l.id FROM messages l WHERE l.position = t.last_position LIMIT 1),
       t.last_seq, t.last_time, t.unread, t.mentioned
FROM (
    SELECT user_id, chat_type, chat_id, MAX(position) AS last_position, MAX(seq) AS last_seq, MAX(create_time) AS last_time,
           SUM(counted) AS unread, MAX(called) AS mentioned
    FROM (
        SELECT i.user_id, m.chat_type, CASE WHEN m.chat_type = 'group' THEN m.to_id ELSE m.from_id END AS chat_id,
               m.position, MIN(i.seq) AS seq, m.create_time,
               CASE WHEN m.from_id > 0 THEN 1 ELSE 0 END AS counted,
               MAX(CASE WHEN i.payload IS NOT NULL THEN 1 ELSE 0 END) AS called
        FROM inbox i JOIN messages m ON m.id = i.message_id
        WHERE i.kind = 'message'
        GROUP BY i.user_id, m.id, m.chat_type, m.to_id, m.from_id, m.position, m.create_time
        UNION ALL
        SELECT m.from_id, m.chat_type, m.to_id, m.position, 0, m.create_time, 0, 0
        FROM messages m WHERE m.from_id > 0
    ) touches
    GROUP BY user_id, chat_type, chat_id
) t;

-- The message path writes less per message:
-- * a message's body is stored once (messages.body); its inbox rows refer to it by
--   message_id instead of carrying a copy each (notices keep their payload);
-- * a user's last seq is MAX(seq) of their inbox (no inbox_heads row to rewrite);
-- * delivery is a per-user cursor (every row up to it delivered), not a flag per row
--   rewritten for every message;
-- * one-to-one and group history have an index each, touched only by their messages.
ALTER TABLE inbox ALTER COLUMN payload DROP NOT NULL;
UPDATE inbox SET payload = NULL WHERE kind = 'message' AND message_id IS NOT NULL;
DROP TABLE IF EXISTS inbox_heads;
CREATE TABLE inbox_cursor (
    user_id        BIGINT PRIMARY KEY,
    delivered_upto BIGINT NOT NULL
);
INSERT INTO inbox_cursor (user_id, delivered_upto)
    SELECT user_id, COALESCE(MIN(seq) FILTER (WHERE delivered = 0) - 1, MAX(seq)) FROM inbox GROUP BY user_id;
DROP INDEX IF EXISTS inbox_pending;
ALTER TABLE inbox DROP COLUMN delivered;
DROP INDEX IF EXISTS messages_conversation;
CREATE INDEX messages_single ON messages (from_id, to_id, position) WHERE chat_type = 'single';
DROP INDEX IF EXISTS messages_to;
CREATE INDEX messages_group ON messages (to_id, position) WHERE chat_type = 'group';

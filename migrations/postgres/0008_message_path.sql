-- The message path writes less per message:
-- * a message's body is stored once (messages.body); its inbox rows refer to it by
--   message_id instead of carrying a copy each (notices keep their payload);
-- * a user's last seq is MAX(seq) of their inbox (no inbox_heads row to rewrite);
-- * the index of undelivered rows holds only those (a row leaves it once delivered);
-- * one-to-one and group history have an index each, touched only by their messages.
ALTER TABLE inbox ALTER COLUMN payload DROP NOT NULL;
UPDATE inbox SET payload = NULL WHERE kind = 'message' AND message_id IS NOT NULL;
DROP TABLE IF EXISTS inbox_heads;
DROP INDEX IF EXISTS inbox_pending;
CREATE INDEX inbox_pending ON inbox (user_id, seq) WHERE delivered = 0;
DROP INDEX IF EXISTS messages_conversation;
CREATE INDEX messages_single ON messages (from_id, to_id, position) WHERE chat_type = 'single';
DROP INDEX IF EXISTS messages_to;
CREATE INDEX messages_group ON messages (to_id, position) WHERE chat_type = 'group';

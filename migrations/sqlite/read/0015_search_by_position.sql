-- The search index keeps nothing but the index: a found row's rowid is the message's
-- log position, which becomes the `messages` row's own rowid (`position INTEGER PRIMARY
-- KEY`), so a search joins the two on it instead of on a copy of the message's id kept
-- beside the index (`message_search_content`: a row per indexed message, ~6 % of a
-- rebuild's time). A contentless index cannot give its terms back, so the new one is
-- empty: the "search" checkpoint goes back to the log's start and the search projection
-- indexes every message again, in the background (a search meanwhile waits for it, up to
-- 30 s, as for any index that trails the log; `im rebuild search` does it at once).
CREATE TABLE messages_by_position (
    id            TEXT    NOT NULL,
    position      INTEGER PRIMARY KEY,
    chat_type     TEXT    NOT NULL,
    from_id       INTEGER NOT NULL,
    to_id         INTEGER NOT NULL,
    client_msg_id TEXT,
    body          TEXT    NOT NULL,
    isremove      INTEGER NOT NULL DEFAULT 0,
    create_time   INTEGER NOT NULL
);
INSERT INTO messages_by_position (id, position, chat_type, from_id, to_id, client_msg_id, body, isremove, create_time)
SELECT id, position, chat_type, from_id, to_id, client_msg_id, body, isremove, create_time FROM messages;
DROP TABLE messages;
ALTER TABLE messages_by_position RENAME TO messages;
CREATE UNIQUE INDEX messages_id ON messages (id);
CREATE INDEX messages_single ON messages (from_id, to_id, position) WHERE chat_type = 'single';
CREATE INDEX messages_group ON messages (to_id, position) WHERE chat_type = 'group';

-- (0014: FTS5 forgets `message_search_content` when the table is dropped.)
DROP TABLE message_search;
DROP TABLE IF EXISTS message_search_content;
CREATE VIRTUAL TABLE message_search USING fts5(terms, content = '', contentless_delete = 1);
UPDATE projection_checkpoints SET position = 0 WHERE name = 'search';

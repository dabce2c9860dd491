-- The search index keeps no copy of what it indexes: `terms` is derived from the
-- message's text (kept in `messages`), and a search shows the message's own body. Only
-- `message_id` is stored beside the index (for the join to `messages`); rows can still be
-- deleted (an edit or a revocation). The rows are indexed again as they were, so the
-- "search" checkpoint stays true. SQLite 3.51's FTS5 forgets the table that keeps the
-- stored column (`message_search_content`) when a contentless_unindexed table is renamed
-- or dropped: hence no ALTER TABLE … RENAME here, and whatever drops this table later
-- must drop `message_search_content` too.
CREATE TEMP TABLE message_search_copy AS SELECT rowid AS position, message_id, terms FROM message_search;
DROP TABLE message_search;
CREATE VIRTUAL TABLE message_search USING fts5(
    message_id UNINDEXED, terms,
    content = '', contentless_delete = 1, contentless_unindexed = 1
);
INSERT INTO message_search (rowid, message_id, terms) SELECT position, message_id, terms FROM message_search_copy;
DROP TABLE message_search_copy;

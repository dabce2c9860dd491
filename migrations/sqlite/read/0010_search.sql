-- Follows postgres/0018_search.sql: an FTS5 table whose rowid is the message's log
-- position (so an edit or a revocation finds its row without a scan).
CREATE VIRTUAL TABLE message_search USING fts5(message_id UNINDEXED, terms);

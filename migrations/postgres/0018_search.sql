-- Full-text search of text messages (issue 15): `terms` is the text as
-- im_projections::search::terms writes it (ASCII words; other letters as pairs of
-- characters, then single ones), matched through the 'simple' configuration, which keeps
-- those tokens as they are. Messages stored before this table are found after
-- `im rebuild inbox`.
CREATE TABLE message_search (
    message_id TEXT   PRIMARY KEY,
    position   BIGINT NOT NULL,
    terms      TEXT   NOT NULL
);
CREATE INDEX message_search_terms ON message_search USING GIN (to_tsvector('simple', terms));

-- Follows postgres/0021_trailing_search.sql: the search index became a projection of
-- its own ("search", applied behind the runner); it starts where the inbox, which kept
-- it until now, had got to.
INSERT INTO projection_checkpoints (name, position)
SELECT 'search', position FROM projection_checkpoints WHERE name = 'inbox'
ON CONFLICT (name) DO NOTHING;

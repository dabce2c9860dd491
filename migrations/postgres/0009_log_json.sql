-- The log's payloads and metadata are written once and read whole, never queried
-- inside: JSON keeps the text as written (validated), where JSONB parsed it into its
-- binary form on every append and printed it back on every read of the log.
ALTER TABLE events
    ALTER COLUMN payload TYPE JSON USING payload::JSON,
    ALTER COLUMN metadata TYPE JSON USING metadata::JSON;

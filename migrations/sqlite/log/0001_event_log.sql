-- The event log: the only source of truth.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    event_id       TEXT    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    UNIQUE (stream_id, stream_version)
);

-- Id allocation for aggregates with numeric ids (users, groups). Gaps are harmless.
CREATE TABLE id_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

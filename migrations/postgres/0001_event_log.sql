-- The event log: the only source of truth.
-- Appends take a transaction-scoped advisory lock, so positions become visible in order
-- and a reader that checkpoints at position N never misses an event below N.
CREATE TABLE events (
    position       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      TEXT        NOT NULL,
    stream_version BIGINT      NOT NULL,
    event_id       UUID        NOT NULL UNIQUE,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        JSONB       NOT NULL,
    metadata       JSONB       NOT NULL,
    recorded_at    BIGINT      NOT NULL,
    UNIQUE (stream_id, stream_version)
);

CREATE TABLE id_counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

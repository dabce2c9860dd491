-- What an operator did about a report, and who.
ALTER TABLE reports ADD COLUMN action TEXT NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN handled_by TEXT NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN handled_time INTEGER;

-- The audit trail of the admin console: every event an operator caused.
CREATE TABLE operator_actions (
    position    INTEGER PRIMARY KEY,
    operator    TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    stream_id   TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    create_time INTEGER NOT NULL
);

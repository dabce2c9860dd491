-- Auto-reply question/answer pairs.
CREATE TABLE askanswers (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    ask         TEXT    NOT NULL,
    answer      TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);
CREATE INDEX askanswers_user ON askanswers (user_id, id);

-- Auto-reply question/answer pairs.
CREATE TABLE askanswers (
    id          BIGINT  PRIMARY KEY,
    user_id     BIGINT  NOT NULL,
    ask         TEXT    NOT NULL,
    answer      TEXT    NOT NULL,
    create_time BIGINT  NOT NULL,
    update_time BIGINT  NOT NULL
);
CREATE INDEX askanswers_user ON askanswers (user_id, id);

-- Sessions kept in the order they were last seen, where they were kept by their hashed
-- key: with the key as primary key every new visitor's row went to a random page of the
-- table (and of the last_seen index, among the keys of the same second), so each new
-- session made the commit write a page or two of its own. Now a row is only ever added
-- at the end (a session seen again gets a new row and its old one is deleted), and
-- every process finds sessions by key in a map of its own, which it keeps current by
-- reading the rows added since it last looked (counting/sessions.py). So there is no
-- index by key. Ids must only grow, also after a purge removed every row: AUTOINCREMENT.
CREATE TABLE sessions_in_order (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             BLOB    NOT NULL,
    site_id         INTEGER NOT NULL,
    session         BLOB    NOT NULL,
    last_seen       INTEGER NOT NULL
);
INSERT INTO sessions_in_order (key, site_id, session, last_seen)
    SELECT key, site_id, session, last_seen FROM sessions ORDER BY last_seen, key;
DROP TABLE sessions;
ALTER TABLE sessions_in_order RENAME TO sessions;
CREATE INDEX sessions_last_seen ON sessions(last_seen);

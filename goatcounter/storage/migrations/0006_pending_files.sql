-- Accepted /count pageviews now wait in append-only files (spool.py) instead of a table:
-- a write to a file of one's own needs neither a lock nor a transaction. The database
-- records how far each file has been counted, in the transaction that counts it.
CREATE TABLE pending_files (
    name            TEXT    PRIMARY KEY,
    counted         INTEGER NOT NULL
);
DROP TABLE pending_hits;

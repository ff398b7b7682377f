-- Every import of a CSV export (the command line's, and later the settings page's): the
-- file (a SHA-256 of its content after gunzip, so that the same export gzipped or not is
-- the same file), the site it goes into, and how far it got. rows_done counts the file's
-- records dealt with, imported or refused; it changes only in the transaction that stores
-- those rows, so an import that was stopped at any point resumes after the last row it
-- stored, and an import that is done is not taken twice by mistake.
CREATE TABLE imports (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    hash            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    rows_total      INTEGER NOT NULL,
    rows_done       INTEGER NOT NULL DEFAULT 0,
    rows_imported   INTEGER NOT NULL DEFAULT 0,
    rows_refused    INTEGER NOT NULL DEFAULT 0,
    hits_counted    INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'running'
                            CHECK (state IN ('running', 'failed', 'done')),
    error           TEXT,
    started_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    finished_at     TEXT
);
CREATE INDEX imports_site_hash ON imports(site_id, hash, id);
-- At most one unfinished import of a file into a site: a second run resumes it.
CREATE UNIQUE INDEX imports_unfinished ON imports(site_id, hash) WHERE state != 'done';

-- Why rows were refused (the first ones of each import; rows_refused counts them all),
-- stored with the rows around them.
CREATE TABLE import_refusals (
    import_id       INTEGER NOT NULL REFERENCES imports(id),
    line            INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    PRIMARY KEY (import_id, line)
);

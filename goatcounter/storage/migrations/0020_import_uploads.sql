-- CSV exports uploaded on the settings page, imported in the background by the workers'
-- background threads (exports/uploads.py). The import itself, and how far it got, is
-- its row in `imports` (import_id, once the file was read and recognised). A worker
-- holds an upload while lease_until (epoch seconds) is ahead and moves it on as it
-- works; an upload whose lease ran out (its worker was restarted) is taken over by the
-- next worker that looks, and goes on from the import's recorded position.
CREATE TABLE import_uploads (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    user_id         INTEGER,
    name            TEXT    NOT NULL,
    path            TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    force           INTEGER NOT NULL DEFAULT 0,
    import_id       INTEGER REFERENCES imports(id),
    state           TEXT    NOT NULL DEFAULT 'queued'
                            CHECK (state IN ('queued', 'running', 'done', 'failed')),
    error           TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX import_uploads_waiting ON import_uploads(state, lease_until, id);
CREATE INDEX import_uploads_site ON import_uploads(site_id, id);

-- Queued pageviews that could not be counted, kept with the reason instead of being
-- dropped (or blocking every pageview queued after them).
CREATE TABLE failed_hits (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL,
    hit             TEXT    NOT NULL,
    error           TEXT    NOT NULL,
    failed_at       INTEGER NOT NULL
);

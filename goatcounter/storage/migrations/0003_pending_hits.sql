-- Pageviews from /count that are accepted (durable) but not yet counted. Each browser
-- request adds one row in a tiny transaction; they are counted in batches, which
-- costs a fraction of a transaction per pageview.
CREATE TABLE pending_hits (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL,
    hit             TEXT    NOT NULL
);

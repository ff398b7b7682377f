-- The live log: what /count and POST /api/v0/count decided about each pageview (counted,
-- bot, ignored, invalid, ratelimited, duplicate) and why, for `goatcounter tail` and the
-- /live page. Only the newest entries of each site are kept (counting/livelog.py trims
-- it in the transaction that adds to it), so it stays small however busy a site is.
-- Readers follow the log by id, so ids must only grow. A new row gets the highest id
-- plus one, and trimming never removes the newest row (it removes a site's oldest ones
-- only), so no id is given twice; AUTOINCREMENT would cost a fifth more per entry.
CREATE TABLE live_log (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL,
    -- When the request arrived, in seconds since the epoch (with microseconds): entries
    -- of several workers are shown in this order.
    at              REAL    NOT NULL,
    endpoint        TEXT    NOT NULL,
    path            TEXT    NOT NULL DEFAULT '',
    title           TEXT    NOT NULL DEFAULT '',
    event           INTEGER NOT NULL DEFAULT 0,
    ref             TEXT    NOT NULL DEFAULT '',
    decision        TEXT    NOT NULL,
    reason          TEXT    NOT NULL DEFAULT '',
    browser         TEXT    NOT NULL DEFAULT '',
    system          TEXT    NOT NULL DEFAULT '',
    size            TEXT    NOT NULL DEFAULT '',
    location        TEXT    NOT NULL DEFAULT '',
    session         TEXT    NOT NULL DEFAULT '',
    -- 1 or 0 for a counted pageview, NULL where nothing was counted.
    first_visit     INTEGER,
    -- host:pid of the worker that took the request.
    worker          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX live_log_site ON live_log (site_id, id);

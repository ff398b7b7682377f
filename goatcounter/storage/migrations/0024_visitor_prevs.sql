-- Unique visitors of a range without reading a row per visitor: how many rows of
-- visitor_days each day has with each `prev` (0 for none). A range's unique visitors
-- are the rows in it whose previous day lies before it (migration 0002), so they are
-- the sum of these counts over its days with prev before its first day: at most a row
-- per day and earlier day, where visitor_days has one per visitor and day.
CREATE TABLE visitor_prevs (
    site_id         INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    prev            INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, prev)
) WITHOUT ROWID;
INSERT INTO visitor_prevs (site_id, day, prev, total)
    SELECT site_id, day, coalesce(prev, 0), count(*) FROM visitor_days
    GROUP BY site_id, day, coalesce(prev, 0);

-- SQLite's migration 0024: how many rows of visitor_days each day has with each `prev`
-- (0 for none), so that a range's unique visitors are a sum over a row per day and
-- earlier day instead of a count over a row per visitor and day.
CREATE TABLE visitor_prevs (
    site_id         BIGINT NOT NULL,
    day             BIGINT NOT NULL,
    prev            BIGINT NOT NULL,
    total           BIGINT NOT NULL,
    PRIMARY KEY (site_id, day, prev)
);
INSERT INTO visitor_prevs (site_id, day, prev, total)
    SELECT site_id, day, coalesce(prev, 0), count(*) FROM visitor_days
    GROUP BY site_id, day, coalesce(prev, 0);

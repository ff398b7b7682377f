-- Rollups and indexes for reading statistics over long ranges quickly.

-- Visits per path and UTC month, as running totals by day of the month: c<N> holds
-- the visits of days 1 to N (so c31 is the month's total, in short months too). The
-- visits of any run of days within a month are then one subtraction, and ranking the
-- paths of a range reads a row per path and month instead of one per path and day.
-- `month` is the epoch second of the month's first UTC midnight.
CREATE TABLE path_months (
    site_id INTEGER NOT NULL,
    month   INTEGER NOT NULL,
    path_id INTEGER NOT NULL,
    c1  INTEGER NOT NULL DEFAULT 0,
    c2  INTEGER NOT NULL DEFAULT 0,
    c3  INTEGER NOT NULL DEFAULT 0,
    c4  INTEGER NOT NULL DEFAULT 0,
    c5  INTEGER NOT NULL DEFAULT 0,
    c6  INTEGER NOT NULL DEFAULT 0,
    c7  INTEGER NOT NULL DEFAULT 0,
    c8  INTEGER NOT NULL DEFAULT 0,
    c9  INTEGER NOT NULL DEFAULT 0,
    c10 INTEGER NOT NULL DEFAULT 0,
    c11 INTEGER NOT NULL DEFAULT 0,
    c12 INTEGER NOT NULL DEFAULT 0,
    c13 INTEGER NOT NULL DEFAULT 0,
    c14 INTEGER NOT NULL DEFAULT 0,
    c15 INTEGER NOT NULL DEFAULT 0,
    c16 INTEGER NOT NULL DEFAULT 0,
    c17 INTEGER NOT NULL DEFAULT 0,
    c18 INTEGER NOT NULL DEFAULT 0,
    c19 INTEGER NOT NULL DEFAULT 0,
    c20 INTEGER NOT NULL DEFAULT 0,
    c21 INTEGER NOT NULL DEFAULT 0,
    c22 INTEGER NOT NULL DEFAULT 0,
    c23 INTEGER NOT NULL DEFAULT 0,
    c24 INTEGER NOT NULL DEFAULT 0,
    c25 INTEGER NOT NULL DEFAULT 0,
    c26 INTEGER NOT NULL DEFAULT 0,
    c27 INTEGER NOT NULL DEFAULT 0,
    c28 INTEGER NOT NULL DEFAULT 0,
    c29 INTEGER NOT NULL DEFAULT 0,
    c30 INTEGER NOT NULL DEFAULT 0,
    c31 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, month, path_id)
) WITHOUT ROWID;

INSERT INTO path_months (site_id, month, path_id, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24, c25, c26, c27, c28, c29, c30, c31)
SELECT
    site_id,
    day - (CAST(strftime('%d', day, 'unixepoch') AS INTEGER) - 1) * 86400 AS month,
    path_id,
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 1 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 2 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 3 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 4 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 5 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 6 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 7 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 8 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 9 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 10 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 11 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 12 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 13 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 14 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 15 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 16 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 17 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 18 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 19 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 20 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 21 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 22 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 23 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 24 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 25 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 26 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 27 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 28 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 29 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 30 THEN total ELSE 0 END),
    sum(CASE WHEN CAST(strftime('%d', day, 'unixepoch') AS INTEGER) <= 31 THEN total ELSE 0 END)
FROM path_days
GROUP BY site_id, month, path_id;

-- Unique visitors of a range: `prev` is the previous day on which the same session has a
-- row (NULL on its first), so the rows of a range whose `prev` lies before the range
-- count each session once, without a DISTINCT over every session of the range.
ALTER TABLE visitor_days ADD COLUMN prev INTEGER;
CREATE INDEX visitor_days_session ON visitor_days(site_id, session, day);
UPDATE visitor_days SET prev = (
    SELECT max(p.day) FROM visitor_days p
    WHERE p.site_id = visitor_days.site_id AND p.session = visitor_days.session
      AND p.day < visitor_days.day);

-- stats/toprefs/<name> looks referrers up by name, ignoring case.
CREATE INDEX refs_lower ON refs(lower(ref));

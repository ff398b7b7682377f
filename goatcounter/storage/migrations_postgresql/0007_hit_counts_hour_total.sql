-- SQLite's migration 0026: the hour index of hit_counts holds each row's path and
-- visits, so that the hours at the edges of a range are ranked by an index-only scan.
CREATE INDEX hit_counts_hour_total ON hit_counts(site_id, hour) INCLUDE (path_id, total);
DROP INDEX hit_counts_hour;

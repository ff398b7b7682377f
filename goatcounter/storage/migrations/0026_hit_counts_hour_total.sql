-- Ranking the paths of a range whose ends are not on day edges reads the visits of
-- every path in the hours at those edges by hour (stats/hits, the dashboard's pages).
-- With `total` in the hour index those hours are read from the index alone, instead
-- of a lookup in the table for each of their rows, which cost more than the rest of
-- the ranking together. It replaces the index on (site_id, hour), which it serves too.
CREATE INDEX hit_counts_hour_total ON hit_counts(site_id, hour, total);
DROP INDEX hit_counts_hour;
-- An index without statistics beside a primary key with them looks cheaper to the
-- planner than it is: reads of some paths' hours (stats/total with include_paths) went
-- from their keys to a scan of every path's hours, 15 times slower at a million hits.
-- A sample is not enough (with 10,000 rows it took a path for 2,000 rows, not 52, and
-- chose the same scan). On a database never analyzed this gives the table its first
-- numbers, with which those reads take the primary key too.
ANALYZE hit_counts;

-- Indexes for the dashboard's filters.
--
-- A filter on one browser, system, location, size, language or campaign ranks the paths
-- from the per-path daily tables by that value: these find its rows of a range without
-- reading every path's. They hold `total`, so the tables themselves aren't read.
CREATE INDEX browser_stats_browser ON browser_stats(site_id, browser_id, day, path_id, total);
CREATE INDEX system_stats_system ON system_stats(site_id, system_id, day, path_id, total);
CREATE INDEX location_stats_location ON location_stats(site_id, location, day, path_id, total);
CREATE INDEX size_stats_width ON size_stats(site_id, width, day, path_id, total);
CREATE INDEX language_stats_language ON language_stats(site_id, language, day, path_id, total);
CREATE INDEX campaign_stats_campaign ON campaign_stats(site_id, campaign_id, day, path_id, total);

-- Filters that no aggregate answers (two of those dimensions at once, or visitors under
-- a filter) read the raw hits of the range, when there are few enough: found by time.
CREATE INDEX hits_site_created ON hits(site_id, created_at);

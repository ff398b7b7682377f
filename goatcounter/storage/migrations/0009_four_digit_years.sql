-- first_hit_at was written with strftime's %Y, which gives "1-01-01T12:00:00Z" for a
-- hit dated in year 1: no RFC 3339 reader takes that back, and it sorts wrongly among
-- other times. Such years get their four digits; the time itself stays.
UPDATE sites
SET first_hit_at = printf('%04d', CAST(substr(first_hit_at, 1, instr(first_hit_at, '-') - 1)
                                       AS INTEGER))
                   || substr(first_hit_at, instr(first_hit_at, '-'))
WHERE instr(first_hit_at, '-') BETWEEN 2 AND 4;

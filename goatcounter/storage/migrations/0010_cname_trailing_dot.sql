-- A cname was accepted with the trailing dot of a fully qualified name ("b.test."),
-- which no Host header without the dot matched. Hosts are now looked up without it,
-- so stored cnames lose it too; one that would then equal another site's cname (the
-- same host entered twice) is left as it is, and the site without the dot keeps the host.
UPDATE sites
SET cname = substr(cname, 1, length(cname) - 1)
WHERE cname LIKE '%.'
  AND NOT EXISTS (SELECT 1 FROM sites AS other
                  WHERE other.cname = substr(sites.cname, 1, length(sites.cname) - 1)
                        COLLATE NOCASE);

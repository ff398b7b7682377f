"""The visitor counter's number: visitors of one path, or of the whole site, from the
hourly aggregates (read by their primary keys)."""
from __future__ import annotations

import sqlite3

from goatcounter.storage import db

# Whole site: the visitors of every path; events count, as upstream.
_SITE = ("SELECT coalesce(sum(total), 0) FROM site_counts"
         " WHERE site_id = :site AND hour >= :h0 AND hour < :h1")
_PATH = ("SELECT coalesce(sum(total), 0) FROM hit_counts"
         " WHERE site_id = :site AND path_id = :path AND hour >= :h0 AND hour < :h1")
# Beyond any real hour, so that an open range needs no second query text.
_END_OF_TIME = 1 << 62


def path_id(conn: sqlite3.Connection, site_id: int, path: str) -> int | None:
    """The id of `path` as the counter names it: exactly (ignoring case, as every path
    lookup), else with one leading slash and none at the end (what events are sent as)."""
    for name in dict.fromkeys([path, "/" + path.strip("/")]):
        row = conn.execute("SELECT id FROM paths WHERE site_id = :site AND "
                           + db.nocase("path") + " = " + db.nocase(":path"),
                           {"site": site_id, "path": name}).fetchone()
        if row is not None:
            return int(row[0])
    return None


def visitors(conn: sqlite3.Connection, site_id: int, path: int | None,
             start: int | None = None, end: int | None = None) -> int:
    """Visitors from `start` (inclusive) to `end` (exclusive), Unix times rounded down to
    the hour; `path` None means the whole site."""
    args = {"site": site_id, "path": path,
            "h0": 0 if start is None else start - start % 3600,
            "h1": _END_OF_TIME if end is None else end}
    return int(conn.execute(_SITE if path is None else _PATH, args).fetchone()[0])

"""GET /api/v0/stats/total: visits over a range, by hour in the user's zone, and the
site's unique visitors.

Site-wide numbers come from `site_counts` (one row per site and hour), numbers for some
paths from `hit_counts` (one row per path and hour, read by its primary key).
"""
from __future__ import annotations

import sqlite3
from typing import Any

from goatcounter.stats.days import Series
from goatcounter.stats.filters import IN_PATHS, PathSet
from goatcounter.stats.ranges import Range, Slots, check_days

_SITE_HOURS = {
    False: "SELECT (hour - :h0) / 3600, total FROM site_counts WHERE site_id = :site"
           " AND hour >= :h0 AND hour <= :h1 AND total > 0",
    True: "SELECT (hour - :h0) / 3600, events FROM site_counts WHERE site_id = :site"
          " AND hour >= :h0 AND hour <= :h1 AND events > 0",
}
_EVENTS_ONLY = " AND path_id IN (SELECT id FROM paths WHERE site_id = :site AND event = 1)"
_PATH_HOURS = {
    events: "SELECT (hour - :h0) / 3600, sum(total) FROM hit_counts WHERE site_id = :site"
            " AND " + IN_PATHS + (_EVENTS_ONLY if events else "")
            + " AND hour >= :h0 AND hour <= :h1 GROUP BY hour HAVING sum(total) > 0"
    for events in (False, True)
}


def hourly(conn: sqlite3.Connection, site_id: int, rng: Range, paths: PathSet,
           events: bool = False) -> list[tuple[int, int]]:
    """(hour number in the range, visits) for every hour of the range with visits;
    `events` counts only the visits of events."""
    if rng.empty or paths.nothing:
        return []
    args: dict[str, Any] = {"site": site_id, "h0": rng.first_hour, "h1": rng.last_hour}
    if paths.everything:
        sql = _SITE_HOURS[events]
    else:
        sql = _PATH_HOURS[events]
        args["paths"] = paths.json()
    return [(r[0], r[1]) for r in conn.execute(sql, args)]


_BOTH = {
    True: "SELECT (hour - :h0) / 3600, total, pageviews FROM site_counts WHERE site_id = :site"
          " AND hour >= :h0 AND hour <= :h1 AND pageviews > 0",
    False: "SELECT (hour - :h0) / 3600, sum(total), sum(pageviews) FROM hit_counts"
           " WHERE site_id = :site AND " + IN_PATHS + " AND hour >= :h0 AND hour <= :h1"
           " GROUP BY hour HAVING sum(pageviews) > 0",
}


def hourly_with_pageviews(conn: sqlite3.Connection, site_id: int, rng: Range,
                          paths: PathSet) -> list[tuple[int, int, int]]:
    """(hour number in the range, visits, pageviews) for every hour with pageviews: the
    visits are those of `hourly`, read from the same rows."""
    if rng.empty or paths.nothing:
        return []
    args: dict[str, Any] = {"site": site_id, "h0": rng.first_hour, "h1": rng.last_hour}
    if not paths.everything:
        args["paths"] = paths.json()
    return [(r[0], r[1], r[2]) for r in conn.execute(_BOTH[paths.everything], args)]


def visitors(conn: sqlite3.Connection, site_id: int, rng: Range) -> int:
    """Unique visitors over the UTC days of the range (the days the daily tables use):
    each session once, however many days it spans, and each visit without a session."""
    d0, d1 = rng.daily_span()
    args = {"site": site_id, "d0": d0, "d1": d1}
    # A session's first row in the range is the one whose previous day (`prev`) lies
    # before it: counting those counts each session once (migration 0002); visitor_prevs
    # holds how many rows each day has per previous day (0: none; migration 0024).
    sessions = conn.execute(
        "SELECT coalesce(sum(total), 0) FROM visitor_prevs WHERE site_id = :site"
        " AND day >= :d0 AND day <= :d1 AND prev < :d0", args).fetchone()[0]
    anonymous = conn.execute(
        "SELECT coalesce(sum(total), 0) FROM anonymous_days"
        " WHERE site_id = :site AND day >= :d0 AND day <= :d1", args).fetchone()[0]
    return int(sessions) + int(anonymous)


def total(conn: sqlite3.Connection, site_id: int, rng: Range, paths: PathSet) -> dict[str, Any]:
    """The reply of GET /api/v0/stats/total."""
    check_days(rng)
    series = Series(Slots(rng))
    series.add(hourly(conn, site_id, rng, paths))
    entries, _ = series.entries()
    count = series.count
    events = sum(n for _, n in hourly(conn, site_id, rng, paths, events=True))
    wall = rng.shifted_to_wall_clock()
    in_utc = count if wall == Range(rng.start, rng.end) else \
        sum(n for _, n in hourly(conn, site_id, wall, paths))
    return {"total": count, "total_events": events, "total_utc": in_utc,
            "visitors": visitors(conn, site_id, rng), "stats": entries}

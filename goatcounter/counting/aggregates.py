"""The aggregate tables the stats endpoints read, kept current in the same transaction
that stores the hits.

Every table counts visits (first visits of a path in a session); `hit_counts` and
`site_counts` also count every pageview, so the sum of their `pageviews` is the number
of counted hits. `path_months` and the `prev` column of `visitor_days` (migration
0002) exist for the stats reads: see the migration for what they hold.
"""
from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from goatcounter.counting.pipeline.process import Hit

HOUR = 3600
DAY = 86400

# table: (key columns after site_id, counted columns). Names are fixed here, never
# taken from a request.
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hit_counts": (("path_id", "hour"), ("total", "pageviews")),
    "site_counts": (("hour",), ("total", "events", "pageviews")),
    "path_days": (("day", "path_id"), ("total",)),
    "ref_counts": (("path_id", "hour", "ref_id"), ("total",)),
    "ref_hours": (("hour", "ref_id"), ("total",)),
    "ref_days": (("day", "ref_id"), ("total",)),
    "browser_stats": (("path_id", "day", "browser_id"), ("total",)),
    "browser_days": (("day", "browser_id"), ("total",)),
    "system_stats": (("path_id", "day", "system_id"), ("total",)),
    "system_days": (("day", "system_id"), ("total",)),
    "location_stats": (("path_id", "day", "location"), ("total",)),
    "location_days": (("day", "location"), ("total",)),
    "size_stats": (("path_id", "day", "width"), ("total",)),
    "size_days": (("day", "width"), ("total",)),
    "language_stats": (("path_id", "day", "language"), ("total",)),
    "language_days": (("day", "language"), ("total",)),
    "campaign_stats": (("path_id", "day", "campaign_id", "ref"), ("total",)),
    "campaign_days": (("day", "campaign_id", "ref"), ("total",)),
    "anonymous_days": (("day",), ("total",)),
}


def _sql(table: str) -> str:
    keys, counts = TABLES[table]
    cols = ("site_id", *keys, *counts)
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            f" ON CONFLICT (site_id, {', '.join(keys)}) DO UPDATE SET {updates}")


_SQL = {table: _sql(table) for table in TABLES}


def _path_months_sql(day: int) -> str:
    """The upsert of path_months for visits on day `day` of a month: they count in the
    running totals of that day and every later one."""
    cols = [f"c{d}" for d in range(day, 32)]
    updates = ", ".join(f"{c} = path_months.{c} + excluded.{c}" for c in cols)
    return (f"INSERT INTO path_months (site_id, month, path_id, {', '.join(cols)})"
            f" VALUES (?, ?, ?{', ?' * len(cols)})"
            f" ON CONFLICT (site_id, month, path_id) DO UPDATE SET {updates}")


_PATH_MONTHS_SQL = {day: _path_months_sql(day) for day in range(1, 32)}

# A session's row for a day points to its previous day (see migration 0002); a day
# filled in later than the next one moves the next one's pointer.
_VISITOR_SQL = (
    "INSERT INTO visitor_days (site_id, day, session, prev) SELECT :site, :day, :session,"
    " (SELECT max(day) FROM visitor_days WHERE site_id = :site AND session = :session"
    " AND day < :day) WHERE true ON CONFLICT DO NOTHING",
    "UPDATE visitor_days SET prev = :day WHERE site_id = :site AND session = :session"
    " AND day = (SELECT min(day) FROM visitor_days WHERE site_id = :site"
    " AND session = :session AND day > :day) AND (prev IS NULL OR prev < :day)",
)


def month_of(day: int) -> tuple[int, int]:
    """(start of the UTC month, day of the month) of a day start."""
    mday = time.gmtime(day).tm_mday
    return day - (mday - 1) * DAY, mday


def _flush_months(conn: sqlite3.Connection, site_id: int, counts: Counter) -> None:
    by_day: dict[int, list[tuple[int, ...]]] = {}
    for (month, path_id, mday), n in counts.items():
        by_day.setdefault(mday, []).append((site_id, month, path_id, *([n] * (32 - mday))))
    for mday, rows in by_day.items():
        conn.executemany(_PATH_MONTHS_SQL[mday], rows)


def _flush(conn: sqlite3.Connection, site_id: int, table: str,
           counts: dict[tuple, tuple[int, ...]] | Counter) -> None:
    if not counts:
        return
    rows = []
    for key, value in counts.items():
        values = value if isinstance(value, tuple) else (value,)
        rows.append((site_id, *key, *values))
    conn.executemany(_SQL[table], rows)


# A session made in this transaction has no other day yet: its rows need no pointers.
_NEW_VISITOR_SQL = ("INSERT INTO visitor_days (site_id, day, session, prev)"
                    " VALUES (:site, :day, :session, NULL) ON CONFLICT DO NOTHING")


def add(conn: sqlite3.Connection, site_id: int, hits: Iterable[Hit],
        fresh: set[bytes] | frozenset[bytes] = frozenset()) -> None:
    """Count stored hits into every aggregate table (inside the caller's transaction).
    `fresh` are the sessions made in it."""
    hit_counts: dict[tuple, list[int]] = {}
    site_counts: dict[tuple, list[int]] = {}
    visit_tables: dict[str, Counter] = {t: Counter() for t in TABLES
                                        if t not in ("hit_counts", "site_counts")}
    visitors: set[tuple[int, int]] = set()
    new_visitors: set[tuple[int, int]] = set()
    months: Counter = Counter()
    day_months: dict[int, tuple[int, int]] = {}
    for h in hits:
        hour = h.created_at - h.created_at % HOUR
        day = h.created_at - h.created_at % DAY
        fv = 1 if h.first_visit else 0
        pair = hit_counts.setdefault((h.path_id, hour), [0, 0])
        pair[0] += fv
        pair[1] += 1
        site = site_counts.setdefault((hour,), [0, 0, 0])
        site[0] += fv
        site[1] += fv if h.event else 0
        site[2] += 1
        if not fv:
            continue
        t = visit_tables
        t["path_days"][(day, h.path_id)] += 1
        if day not in day_months:
            day_months[day] = month_of(day)
        month, mday = day_months[day]
        months[(month, h.path_id, mday)] += 1
        t["ref_counts"][(h.path_id, hour, h.ref_id)] += 1
        t["ref_hours"][(hour, h.ref_id)] += 1
        t["ref_days"][(day, h.ref_id)] += 1
        if h.browser_id is not None:
            t["browser_stats"][(h.path_id, day, h.browser_id)] += 1
            t["browser_days"][(day, h.browser_id)] += 1
        if h.system_id is not None:
            t["system_stats"][(h.path_id, day, h.system_id)] += 1
            t["system_days"][(day, h.system_id)] += 1
        t["location_stats"][(h.path_id, day, h.location)] += 1
        t["location_days"][(day, h.location)] += 1
        t["size_stats"][(h.path_id, day, h.width)] += 1
        t["size_days"][(day, h.width)] += 1
        t["language_stats"][(h.path_id, day, h.language)] += 1
        t["language_days"][(day, h.language)] += 1
        if h.campaign_id is not None:
            t["campaign_stats"][(h.path_id, day, h.campaign_id, h.ref)] += 1
            t["campaign_days"][(day, h.campaign_id, h.ref)] += 1
        if h.session is not None:
            (new_visitors if h.session in fresh else visitors).add(
                (day, int.from_bytes(h.session[:8], "big", signed=True)))
        else:
            t["anonymous_days"][(day,)] += 1
    _flush(conn, site_id, "hit_counts", {k: tuple(v) for k, v in hit_counts.items()})
    _flush(conn, site_id, "site_counts", {k: tuple(v) for k, v in site_counts.items()})
    for table, counts in visit_tables.items():
        _flush(conn, site_id, table, counts)
    _flush_months(conn, site_id, months)
    # A new session's visits may span days within one batch (imports): only its first
    # day is sure to have no earlier one.
    firsts: dict[int, int] = {}
    for day, session in new_visitors:
        firsts[session] = min(day, firsts.get(session, day))
    for day, session in new_visitors:
        if firsts[session] != day:
            visitors.add((day, session))
    if firsts:
        conn.executemany(_NEW_VISITOR_SQL, [{"site": site_id, "day": d, "session": s}
                                            for s, d in sorted(firsts.items())])
    if visitors:
        rows = [{"site": site_id, "day": d, "session": s} for d, s in sorted(visitors)]
        for sql in _VISITOR_SQL:
            conn.executemany(sql, rows)

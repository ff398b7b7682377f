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
from collections.abc import Iterable, Iterator
from itertools import compress
from typing import TYPE_CHECKING, Any

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
# filled in later than the next one moves the next one's pointer. visitor_prevs counts
# the rows by their pointer (migration 0024) and moves with them.
_VISITOR_FIND = {
    "row": "SELECT 1 FROM visitor_days WHERE site_id = :site AND day = :day"
           " AND session = :session",
    "prev": "SELECT max(day) FROM visitor_days WHERE site_id = :site AND session = :session"
            " AND day < :day",
    "next": "SELECT day, prev FROM visitor_days WHERE site_id = :site AND session = :session"
            " AND day > :day ORDER BY day LIMIT 1",
}
_VISITOR_INSERT = ("INSERT INTO visitor_days (site_id, day, session, prev)"
                   " VALUES (:site, :day, :session, :prev) ON CONFLICT DO NOTHING")
_VISITOR_MOVE = ("UPDATE visitor_days SET prev = :prev WHERE site_id = :site"
                 " AND day = :day AND session = :session")
_PREVS_SQL = ("INSERT INTO visitor_prevs (site_id, day, prev, total) VALUES (?, ?, ?, ?)"
              " ON CONFLICT (site_id, day, prev) DO UPDATE"
              " SET total = visitor_prevs.total + excluded.total")
_PREVS_RECOUNT = (
    "DELETE FROM visitor_prevs WHERE site_id = :site AND day = :day",
    "INSERT INTO visitor_prevs (site_id, day, prev, total) SELECT site_id, day,"
    " coalesce(prev, 0), count(*) FROM visitor_days WHERE site_id = :site AND day = :day"
    " GROUP BY site_id, day, coalesce(prev, 0)",
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


def _keys(*columns: list) -> Iterator[tuple]:
    """The rows of equally long columns."""
    return zip(*columns, strict=True)


def add(conn: sqlite3.Connection, site_id: int, hits: Iterable[Hit],
        fresh: set[bytes] | frozenset[bytes] = frozenset()) -> None:
    """Count stored hits into every aggregate table (inside the caller's transaction).
    `fresh` are the sessions made in it."""
    # Column by column: Counter counts an iterable of keys in C, a Python `+= 1` per key
    # and table cost about a microsecond a hit more (the aggregates.add lines of
    # bench/profile_ingest.py --steps).
    hits = list(hits)
    if not hits:
        return
    hours = [h.created_at - h.created_at % HOUR for h in hits]
    firsts = [h.first_visit for h in hits]
    views = Counter(_keys([h.path_id for h in hits], hours))
    visits = list(compress(hits, firsts))
    v_hour = list(compress(hours, firsts))
    v_path = [h.path_id for h in visits]
    hour_visits = Counter(_keys(v_path, v_hour))
    _flush(conn, site_id, "hit_counts",
           {key: (hour_visits.get(key, 0), n) for key, n in views.items()})
    per_hour, visits_per_hour = Counter(hours), Counter(v_hour)
    events_per_hour = Counter(compress(v_hour, [h.event for h in visits]))
    _flush(conn, site_id, "site_counts",
           {(hour,): (visits_per_hour.get(hour, 0), events_per_hour.get(hour, 0), n)
            for hour, n in per_hour.items()})
    if not visits:
        return
    v_day = [h.created_at - h.created_at % DAY for h in visits]
    refs = [h.ref_id for h in visits]
    path_days = Counter(_keys(v_day, v_path))
    counts: dict[str, Counter] = {
        "path_days": path_days,
        "ref_counts": Counter(_keys(v_path, v_hour, refs)),
        "ref_hours": Counter(_keys(v_hour, refs)),
        "ref_days": Counter(_keys(v_day, refs)),
    }
    optional: dict[str, list[Any]] = {"browser": [h.browser_id for h in visits],
                                      "system": [h.system_id for h in visits]}
    for name, column in optional.items():
        known = [v is not None for v in column]
        counts[f"{name}_stats"] = Counter(compress(_keys(v_path, v_day, column), known))
        counts[f"{name}_days"] = Counter(compress(_keys(v_day, column), known))
    always: dict[str, list[Any]] = {"location": [h.location for h in visits],
                                    "size": [h.width for h in visits],
                                    "language": [h.language for h in visits]}
    for name, column in always.items():
        counts[f"{name}_stats"] = Counter(_keys(v_path, v_day, column))
        counts[f"{name}_days"] = Counter(_keys(v_day, column))
    campaigns = [h.campaign_id for h in visits]
    known = [c is not None for c in campaigns]
    if any(known):
        texts = [h.ref for h in visits]
        counts["campaign_stats"] = Counter(compress(_keys(v_path, v_day, campaigns, texts), known))
        counts["campaign_days"] = Counter(compress(_keys(v_day, campaigns, texts), known))
    visitors: set[tuple[int, int]] = set()
    new_visitors: set[tuple[int, int]] = set()
    anonymous: list[int] = []
    for h, day in _keys(visits, v_day):
        if h.session is not None:
            (new_visitors if h.session in fresh else visitors).add(
                (day, int.from_bytes(h.session[:8], "big", signed=True)))
        else:
            anonymous.append(day)
    counts["anonymous_days"] = Counter((day,) for day in anonymous)
    for table in TABLES:
        if table in counts:
            _flush(conn, site_id, table, counts[table])
    months: Counter = Counter()
    day_months: dict[int, tuple[int, int]] = {}
    for (day, path_id), n in path_days.items():
        if day not in day_months:
            day_months[day] = month_of(day)
        month, mday = day_months[day]
        months[(month, path_id, mday)] += n
    _flush_months(conn, site_id, months)
    _add_visitors(conn, site_id, new_visitors, visitors)


def _add_visitors(conn: sqlite3.Connection, site_id: int, new: set[tuple[int, int]],
                  seen: set[tuple[int, int]]) -> None:
    """Rows of visitor_days for (day, session) pairs, `new` those of sessions made in this
    transaction, and the counts of visitor_prevs with them."""
    prevs: Counter = Counter()
    # A new session's visits may span days within one batch (imports): only its first
    # day is sure to have no earlier one.
    firsts: dict[int, int] = {}
    for day, session in new:
        firsts[session] = min(day, firsts.get(session, day))
    seen = seen | {(day, s) for day, s in new if firsts[s] != day}
    if firsts:
        rows = [{"site": site_id, "day": d, "session": s, "prev": None}
                for s, d in sorted(firsts.items())]
        # The rows written (both engines sum executemany's counts); fewer than asked
        # means a row was already there.
        if conn.executemany(_VISITOR_INSERT, rows).rowcount == len(rows):
            prevs.update((d, 0) for d in firsts.values())
        else:  # two sessions with the same first 8 bytes: count those days afresh
            for day in sorted(set(firsts.values())):
                for sql in _PREVS_RECOUNT:
                    conn.execute(sql, {"site": site_id, "day": day})
    for day, session in sorted(seen):
        args: dict[str, Any] = {"site": site_id, "day": day, "session": session}
        if conn.execute(_VISITOR_FIND["row"], args).fetchone():
            continue
        args["prev"] = conn.execute(_VISITOR_FIND["prev"], args).fetchone()[0]
        conn.execute(_VISITOR_INSERT, args)
        prevs[(day, args["prev"] or 0)] += 1
        after = conn.execute(_VISITOR_FIND["next"], args).fetchone()
        if after is not None and (after[1] is None or after[1] < day):
            conn.execute(_VISITOR_MOVE, {"site": site_id, "day": after[0],
                                         "session": session, "prev": day})
            prevs[(after[0], after[1] or 0)] -= 1
            prevs[(after[0], day)] += 1
    conn.executemany(_PREVS_SQL, [(site_id, d, p, n) for (d, p), n in sorted(prevs.items())
                                  if n])

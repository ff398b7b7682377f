"""GET /api/v0/stats/hits: the paths with the most visits in a range, each with its
visits by hour in the user's zone.

Ranking reads `path_months` (running totals by day, one row per path and month) for
the range's whole UTC days and `hit_counts` for the hours at its edges; the hourly
numbers of the listed paths then come from `hit_counts` by its primary key.

The work of one question is bounded by its day entries (paths asked for times days):
up to HOURLY_ENTRIES each day has its 24 hourly numbers; up to MAX_ENTRIES the days are
whole UTC days with daily numbers only (from `path_months`, a row per path and month);
more is refused. Three requests for 100 paths over ten years held every worker for
half a minute and answered 170 MB each.
"""
from __future__ import annotations

import calendar
import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from goatcounter.counting import aggregates
from goatcounter.errors import BadRequest
from goatcounter.stats.days import Series, day_entries
from goatcounter.stats.filters import IN_PATHS, PathSet
from goatcounter.stats.ranges import DAY, UTC, Range, Slots, check_days
from goatcounter.storage import db

_NOT_EXCLUDED = db.in_list("path_id", "exclude", negate=True)
# Day entries (paths asked for × days) with hourly numbers: 100 paths over 100 days,
# 20 over 500, about 5 MB of reply at most.
HOURLY_ENTRIES = 10_000
# Day entries with daily numbers only: 27 paths over ten years, about 8 MB of reply.
MAX_ENTRIES = 100_000


def month_parts(d0: int, d1: int) -> list[tuple[int, int, int]]:
    """The whole UTC days d0 to d1 as (month start, first day of the month, last day of
    the month) parts."""
    parts = []
    day = d0
    while day <= d1:
        month, first = aggregates.month_of(day)
        length = calendar.monthrange(time.gmtime(day).tm_year, time.gmtime(day).tm_mon)[1]
        last = min(length, first + (d1 - day) // DAY)
        parts.append((month, first, last))
        day += (last - first + 1) * DAY
    return parts


def _days_in(first: int, last: int) -> str:
    """The visits of days first..last of a month from its running totals (the column
    names are built from numbers, never from request text)."""
    return f"c{last}" if first == 1 else f"c{last} - c{first - 1}"


def _ranking_sql(months: list[tuple[int, int, int]], edges: list[int], filtered: bool,
                 excluded: bool, after: bool) -> str:
    """The ranking query for one shape of range and filters (fixed fragments only)."""
    cond = (" AND " + IN_PATHS if filtered else "") + \
        (" AND " + _NOT_EXCLUDED if excluded else "")
    # Rows without visits in those days are left out here, which spares sorting them.
    parts = [f"SELECT path_id, {_days_in(first, last)} AS total FROM path_months"
             f" WHERE site_id = :site AND month = :m{i}{cond}"
             f" AND {_days_in(first, last)} > 0"
             for i, (_, first, last) in enumerate(months)]
    for i, sign in enumerate(edges):
        parts.append(f"SELECT path_id, {'' if sign > 0 else '-'}total FROM hit_counts"
                     f" WHERE site_id = :site AND hour >= :e{i}a AND hour <= :e{i}b{cond}")
    having = "sum(total) > 0"
    if after:
        having += (" AND (sum(total) < :after_count OR (sum(total) = :after_count"
                   " AND path_id < :after))")
    return (f"SELECT path_id, sum(total) AS count FROM ({' UNION ALL '.join(parts)}) s"
            f" GROUP BY path_id HAVING {having} ORDER BY count DESC, path_id DESC LIMIT :limit")


def ranked(conn: sqlite3.Connection, site_id: int, rng: Range, paths: PathSet,
           exclude: list[int], limit: int,
           after: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """(path id, visits) of the paths with the most visits in the range, most first
    (ties: higher id first); `after` (path id, its visits) starts after that path."""
    days, edges = rng.split()
    if paths.nothing or (days is None and not edges):
        return []
    months = month_parts(*days) if days else []
    args: dict[str, Any] = {"site": site_id, "limit": limit}
    for i, (month, _, _) in enumerate(months):
        args[f"m{i}"] = month
    for i, (a, b, _) in enumerate(edges):
        args[f"e{i}a"], args[f"e{i}b"] = a, b
    if not paths.everything:
        args["paths"] = paths.json()
    if exclude:
        args["exclude"] = PathSet(tuple(exclude)).json()
    if after:
        args["after"], args["after_count"] = after
    sql = _ranking_sql(months, [sign for _, _, sign in edges], not paths.everything,
                       bool(exclude), after is not None)
    return [(r[0], r[1]) for r in conn.execute(sql, args)]


class Hours(NamedTuple):
    """One path's hours with visits: hour numbers in the range, and their visits."""

    hours: list[int]
    visits: list[int]

    def pairs(self) -> Iterable[tuple[int, int]]:
        return zip(self.hours, self.visits, strict=True)


def path_hours(conn: sqlite3.Connection, site_id: int, rng: Range,
               ids: list[int]) -> dict[int, Hours]:
    """The hours with visits of each path. A path's hour numbers come back as one text
    and its visits as another (in the same order: one aggregation feeds both), which
    costs far less than a row per hour or a text joined per row; read as JSON, in C."""
    out = {i: Hours([], []) for i in ids}
    rows = conn.execute(
        "SELECT path_id, " + db.join_text("(hour - :h0) / 3600") + ", "
        + db.join_text("total") + " FROM hit_counts WHERE site_id = :site AND " + IN_PATHS
        + " AND hour >= :h0 AND hour <= :h1 AND total > 0 GROUP BY path_id",
        {"site": site_id, "paths": PathSet(tuple(ids)).json(), "h0": rng.first_hour,
         "h1": rng.last_hour})
    for path_id, hours, visits in rows:
        out[path_id] = Hours(json.loads(f"[{hours}]"), json.loads(f"[{visits}]"))
    return out


def too_many(limit: int, days: int) -> str | None:
    """Why a question for `limit` paths over `days` days is refused, or None."""
    if limit * days <= MAX_ENTRIES:
        return None
    return (f"invalid query parameters: {limit} paths over {days} days would be "
            f"{limit * days:,} day entries, more than {MAX_ENTRIES:,}; ask for "
            f"limit={max(1, MAX_ENTRIES // days)} or lower (and page with exclude_paths), "
            f"or a range of at most {MAX_ENTRIES // limit} days")


def _daily(conn: sqlite3.Connection, site_id: int, d0: int, d1: int,
           ids: list[int]) -> dict[int, list[int]]:
    """Visits of each path on the UTC days d0 to d1 (a list by day), from the running
    totals of `path_months`: a row per path and month, read by the primary key."""
    days = (d1 - d0) // DAY + 1
    out = {i: [0] * days for i in ids}
    months = month_parts(d0, d1)
    columns = ", ".join(f"c{n}" for n in range(1, 32))
    rows = conn.execute(
        f"SELECT month, path_id, {columns} FROM path_months WHERE site_id = :site"
        " AND " + db.in_list("month", "months") + " AND " + IN_PATHS,
        {"site": site_id, "months": db.list_param(m for m, _, _ in months),
         "paths": PathSet(tuple(ids)).json()})
    return daily_of_months(rows, d0, days, out)


def daily_of_months(rows: Iterable[Any], d0: int, days: int,
                    out: dict[int, list[int]]) -> dict[int, list[int]]:
    """Fill `out` (a list by day from d0 per path) from path_months rows (month, path
    id, c1 ... c31), which may come in any order."""
    for month, path_id, *running in rows:
        series = out[path_id]
        before = 0
        # Only the month's own days: its later columns fall on the next month's.
        length = calendar.monthrange(time.gmtime(month).tm_year, time.gmtime(month).tm_mon)[1]
        for mday, upto in enumerate(running[:length], 1):
            index = (month - d0) // DAY + mday - 1
            if 0 <= index < days:
                series[index] = upto - before
            before = upto
    return out


def pageviews(conn: sqlite3.Connection, site_id: int, rng: Range,
              ids: list[int]) -> dict[int, int]:
    """The pageviews of each of these paths in the range's hours."""
    out = dict.fromkeys(ids, 0)
    if not ids or rng.empty:
        return out
    rows = conn.execute(
        "SELECT path_id, sum(pageviews) FROM hit_counts WHERE site_id = :site AND " + IN_PATHS
        + " AND hour >= :h0 AND hour <= :h1 GROUP BY path_id",
        {"site": site_id, "paths": PathSet(tuple(ids)).json(), "h0": rng.first_hour,
         "h1": rng.last_hour})
    out.update((r[0], r[1]) for r in rows)
    return out


def hits(conn: sqlite3.Connection, site_id: int, rng: Range, paths: PathSet,
         exclude: list[int], limit: int, group: str, after: int | None = None) -> dict[str, Any]:
    """The reply of GET /api/v0/stats/hits. `group` picks what `max` is the highest of:
    hour, day, week or month. Over HOURLY_ENTRIES day entries the entries have daily
    numbers only, of whole UTC days (`max` of an hourly group is then the daily one);
    over MAX_ENTRIES it raises BadRequest."""
    check_days(rng)
    problem = too_many(limit, rng.days)
    if problem:
        raise BadRequest(problem)
    hourly_numbers = limit * rng.days <= HOURLY_ENTRIES
    if not hourly_numbers:
        d0, d1 = rng.daily_span()
        rng = Range(d0, d1 + DAY - 1, UTC)
        group = "day" if group == "hour" else group
    empty: dict[str, Any] = {"hits": [], "total": 0, "more": False}
    cursor = None
    if after is not None:
        found = ranked(conn, site_id, rng, paths.intersect(PathSet((after,))), [], 1)
        if not found:
            return empty
        cursor = found[0]
    top = ranked(conn, site_id, rng, paths, exclude, limit + 1, cursor)
    more = len(top) > limit
    top = top[:limit]
    if not top:
        return empty
    ids = [p for p, _ in top]
    info = {r[0]: r for r in conn.execute(
        "SELECT id, path, title, event FROM paths WHERE site_id = :site AND "
        + db.in_list("id", "ids"),
        {"site": site_id, "ids": PathSet(tuple(ids)).json()})}
    out = []
    if hourly_numbers:
        hourly = path_hours(conn, site_id, rng, ids)
        slots = Slots(rng)
        numbers = [Series.of_hours(slots, *hourly[p]).numbers() for p in ids]
    else:
        daily = _daily(conn, site_id, rng.start, rng.end - DAY + 1, ids)
        first = dt.date(1970, 1, 1) + dt.timedelta(days=rng.start // DAY)
        dates = [first + dt.timedelta(days=i) for i in range(rng.days)]
        labels = [d.isoformat() for d in dates]
        numbers = [(sum(daily[p]), *day_entries(dates, daily[p], labels=labels)) for p in ids]
    for path_id, (count, entries, highest) in zip(ids, numbers, strict=True):
        row = info[path_id]
        out.append({"count": count, "path_id": path_id, "path": row["path"],
                    "event": bool(row["event"]), "title": row["title"],
                    "max": highest[group], "stats": entries})
    return {"hits": out, "total": sum(h["count"] for h in out), "more": more}

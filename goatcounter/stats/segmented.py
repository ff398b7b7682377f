"""Visits under one dimension filter (a referrer, browser, system, size class, country,
language or campaign), answered from the aggregates: the paths ranked by those visits,
their numbers over time, and the site's numbers over time.

Referrers are counted per hour and path (`ref_counts`, `ref_hours`), so a referrer
filter keeps hourly numbers; the other dimensions are counted per UTC day
(`<dim>_stats`, `<dim>_days`), so under them the numbers are daily, over the range's
whole UTC days as the API's lists are.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from goatcounter.stats.filters import IN_PATHS, PathSet
from goatcounter.stats.ranges import DAY, Range, day_start
from goatcounter.stats.segments import TABLES, Dim
from goatcounter.storage import db

_KEYS = "keys"
# Up to this many paths, rows are found path by path (the primary key) rather than
# through the dimension's index, which holds every path's rows of the range.
FEW_PATHS = 200


def _key(column: str, paths: PathSet) -> str:
    """The condition on the dimension's key; for a few paths written so that SQLite
    doesn't use the key's index for it (`+column`)."""
    few = paths.ids is not None and len(paths.ids) <= FEW_PATHS
    return db.in_list(("+" if few else "") + column, _KEYS)


def hourly(dim: Dim) -> bool:
    """Whether the numbers under this filter are kept per hour."""
    return dim.kind == "ref"


def _args(site_id: int, rng: Range, dim: Dim, paths: PathSet) -> dict[str, Any]:
    args: dict[str, Any] = {"site": site_id, _KEYS: dim.json()}
    if hourly(dim):
        args.update(h0=rng.first_hour, h1=rng.last_hour)
    else:
        args["d0"], args["d1"] = rng.daily_span()
    if not paths.everything:
        args["paths"] = paths.json()
    return args


def _source(dim: Dim, paths: PathSet, per_path: bool) -> tuple[str, str, str]:
    """(table, key column, time condition) of the rows to read."""
    if hourly(dim):
        table = "ref_counts" if per_path or not paths.everything else "ref_hours"
        return table, "ref_id", "hour >= :h0 AND hour <= :h1"
    site_table, path_table, key = TABLES[dim.kind]
    table = path_table if per_path or not paths.everything else site_table
    return table, key, "day >= :d0 AND day <= :d1"


def ranked(conn: sqlite3.Connection, site_id: int, rng: Range, paths: PathSet, dim: Dim,
           limit: int) -> list[tuple[int, int]]:
    """(path id, visits) of the paths with the most visits under the filter, most first
    (ties: higher id first, as hitlist.ranked)."""
    if paths.nothing or rng.empty:
        return []
    table, key, when = _source(dim, paths, per_path=True)
    cond = "" if paths.everything else " AND " + IN_PATHS
    sql = (f"SELECT path_id, sum(total) AS count FROM {table} WHERE site_id = :site AND "
           + _key(key, paths) + f" AND {when}{cond} GROUP BY path_id"
           " HAVING sum(total) > 0 ORDER BY count DESC, path_id DESC LIMIT :limit")
    args = _args(site_id, rng, dim, paths)
    args["limit"] = limit
    return [(r[0], r[1]) for r in conn.execute(sql, args)]


def path_rows(conn: sqlite3.Connection, site_id: int, rng: Range, dim: Dim,
              ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """The visits of each path over time under the filter: (hour number in the range,
    visits) for a referrer, else (UTC day start, visits)."""
    out: dict[int, list[tuple[int, int]]] = {i: [] for i in ids}
    if not ids or rng.empty:
        return out
    only = PathSet(tuple(ids))
    table, key, when = _source(dim, only, per_path=True)
    bucket = "(hour - :h0) / 3600" if hourly(dim) else "day"
    sql = (f"SELECT path_id, {bucket}, sum(total) FROM {table} WHERE site_id = :site AND "
           + IN_PATHS + f" AND {when} AND " + _key(key, only)
           + f" GROUP BY path_id, {bucket}")
    for path_id, when_, n in conn.execute(sql, _args(site_id, rng, dim, only)):
        out[path_id].append((when_, n))
    return out


def site_rows(conn: sqlite3.Connection, site_id: int, rng: Range, paths: PathSet,
              dim: Dim) -> list[tuple[int, int]]:
    """The visits under the filter over time, for the whole site or a path set: (hour
    number in the range, visits) for a referrer, else (UTC day start, visits)."""
    if paths.nothing or rng.empty:
        return []
    table, key, when = _source(dim, paths, per_path=False)
    bucket = "(hour - :h0) / 3600" if hourly(dim) else "day"
    cond = "" if paths.everything else " AND " + IN_PATHS
    sql = (f"SELECT {bucket}, sum(total) FROM {table} WHERE site_id = :site AND {when}"
           + cond + " AND " + _key(key, paths) + f" GROUP BY {bucket}")
    return [(r[0], r[1]) for r in conn.execute(sql, _args(site_id, rng, dim, paths))]


def day_index(rng: Range) -> dict[int, int]:
    """UTC day start → index in rng.local_dates(): the daily tables' day D stands for
    the date D in the user's zone (as the API's lists read them)."""
    return {day_start(d): i for i, d in enumerate(rng.local_dates())}


def days_of(rows: list[tuple[int, int]], rng: Range) -> list[int]:
    """Daily rows as one number per date of the range."""
    index = day_index(rng)
    out = [0] * len(index)
    for day, n in rows:
        i = index.get(day - day % DAY)
        if i is not None:
            out[i] += n
    return out

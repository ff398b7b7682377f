"""Purging and merging paths (the settings page "Manage pageviews"): a path's hits and
every number counted from them go, or several paths become one.

Each change is one write transaction over the hits and the aggregate tables, so the
API and the dashboard, which read the same tables, agree the moment it commits. Site-wide
tables (site_counts, ref_hours, browser_days, ...) are lowered by exactly what the
per-path tables held for the paths that go. Unique visitors per day (visitor_days) are
kept: a session that saw a purged path may have seen others too, and which ones is not
recorded once its hits are gone.
"""
from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

from goatcounter.counting import aggregates, store

DAY = aggregates.DAY
# Per-path table: its site-wide counterpart and how a per-path key becomes a site key
# (the per-path key without path_id; ref_counts' hours also feed ref_days).
_BY_SITE = {
    "ref_counts": ("ref_hours",),
    "browser_stats": ("browser_days",),
    "system_stats": ("system_days",),
    "location_stats": ("location_days",),
    "size_stats": ("size_days",),
    "language_stats": ("language_days",),
    "campaign_stats": ("campaign_days",),
}
# Tables whose rows belong to one path.
PER_PATH = [t for t, (keys, _) in aggregates.TABLES.items() if "path_id" in keys]
MONTH_COLUMNS = [f"c{d}" for d in range(1, 32)]
MAX_MATCHES = 500


def _like(pattern: str) -> str:
    """Upstream's search text as a LIKE pattern: `%` and `_` are wildcards, `\\%` and
    `\\_` the characters themselves; without wildcards it matches anywhere."""
    if "%" not in pattern.replace("\\%", "") and "_" not in pattern.replace("\\_", ""):
        return "%" + pattern + "%"
    return pattern


def find(conn: sqlite3.Connection, site_id: int, pattern: str, match_title: bool = False,
         match_case: bool = False, limit: int = MAX_MATCHES) -> list[dict[str, Any]]:
    """Paths of a site matching a search (case-insensitive unless `match_case`), with
    the number of pageviews each has; the most viewed first."""
    like = _like(pattern)
    where = "p.path LIKE :q ESCAPE '\\'"
    if match_title:
        where = f"({where} OR p.title LIKE :q ESCAPE '\\')"
    rows = conn.execute(
        "SELECT p.id, p.path, p.title, p.event,"
        " (SELECT coalesce(sum(c.pageviews), 0) FROM hit_counts c"
        "  WHERE c.site_id = p.site_id AND c.path_id = p.id) AS hits"
        f" FROM paths p WHERE p.site_id = :s AND {where}"
        " ORDER BY hits DESC, p.id LIMIT :n",
        {"s": site_id, "q": like, "n": limit}).fetchall()
    out = [dict(r) for r in rows]
    if match_case:
        # LIKE ignores ASCII case in SQLite; keep the rows that match as typed.
        needle = pattern.replace("\\%", "%").replace("\\_", "_").strip("%")
        out = [r for r in out if needle in r["path"] or (match_title and needle in r["title"])]
    return out


def of_site(conn: sqlite3.Connection, site_id: int, path_ids: list[int]) -> list[dict[str, Any]]:
    """The paths of a site among `path_ids` (others are left out), with their pageviews."""
    if not path_ids:
        return []
    marks = ",".join("?" * len(path_ids))
    rows = conn.execute(
        "SELECT p.id, p.path, p.title, p.event,"
        " (SELECT coalesce(sum(c.pageviews), 0) FROM hit_counts c"
        "  WHERE c.site_id = p.site_id AND c.path_id = p.id) AS hits"
        f" FROM paths p WHERE p.site_id = ? AND p.id IN ({marks}) ORDER BY p.id",
        [site_id, *path_ids]).fetchall()
    return [dict(r) for r in rows]


def hits_of(conn: sqlite3.Connection, site_id: int, path_ids: list[int]) -> int:
    """How many pageviews the paths have (what a purge or merge touches)."""
    return sum(p["hits"] for p in of_site(conn, site_id, path_ids))


def _sums(conn: sqlite3.Connection, table: str, site_id: int,
          path_ids: list[int]) -> dict[tuple, list[int]]:
    """A per-path table's counts for the paths, summed by the key without path_id."""
    keys, counts = aggregates.TABLES[table]
    rest = [k for k in keys if k != "path_id"]
    marks = ",".join("?" * len(path_ids))
    # Names come from aggregates.TABLES, never from a request.
    rows = conn.execute(
        f"SELECT {', '.join(rest)}, {', '.join(f'sum({c})' for c in counts)} FROM {table}"
        f" WHERE site_id = ? AND path_id IN ({marks}) GROUP BY {', '.join(rest)}",
        [site_id, *path_ids]).fetchall()
    return {tuple(r[: len(rest)]): list(r[len(rest):]) for r in rows}


def _lower(conn: sqlite3.Connection, table: str, site_id: int,
           amounts: dict[tuple, list[int]]) -> None:
    """Subtract amounts from a site-wide table's rows, and drop rows left at nothing."""
    if not amounts:
        return
    keys, counts = aggregates.TABLES[table]
    sets = ", ".join(f"{c} = {c} - ?" for c in counts)
    match = " AND ".join(f"{k} = ?" for k in keys)
    conn.executemany(f"UPDATE {table} SET {sets} WHERE site_id = ? AND {match}",
                     [(*values, site_id, *key) for key, values in amounts.items()])
    conn.executemany(f"DELETE FROM {table} WHERE site_id = ? AND {match} AND {counts[0]} <= 0",
                     [(site_id, *key) for key in amounts])


def _events(conn: sqlite3.Connection, site_id: int, path_ids: list[int]) -> set[int]:
    marks = ",".join("?" * len(path_ids))
    return {r[0] for r in conn.execute(
        f"SELECT id FROM paths WHERE site_id = ? AND id IN ({marks}) AND event = 1",
        [site_id, *path_ids])}


def _site_counts(conn: sqlite3.Connection, site_id: int, path_ids: list[int],
                 events: bool) -> dict[tuple, list[int]]:
    """What the paths add to site_counts per hour: visits, event visits, pageviews."""
    marks = ",".join("?" * len(path_ids))
    rows = conn.execute(
        f"SELECT hour, sum(total), sum(pageviews) FROM hit_counts WHERE site_id = ?"
        f" AND path_id IN ({marks}) GROUP BY hour", [site_id, *path_ids]).fetchall()
    return {(r[0],): [r[1], r[1] if events else 0, r[2]] for r in rows}


def _lower_site_tables(conn: sqlite3.Connection, site_id: int, path_ids: list[int]) -> None:
    """Take what the paths counted out of every site-wide table."""
    events = _events(conn, site_id, path_ids)
    plain = [p for p in path_ids if p not in events]
    amounts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for group, is_event in ((sorted(events), True), (plain, False)):
        if group:
            for key, values in _site_counts(conn, site_id, group, is_event).items():
                amounts[key] = [a + b for a, b in zip(amounts[key], values, strict=True)]
    # site_counts' first count is `total`; a row goes only when it has no pageviews left.
    _lower_site_counts(conn, site_id, dict(amounts))
    for table, (site_table,) in _BY_SITE.items():
        sums = _sums(conn, table, site_id, path_ids)
        _lower(conn, site_table, site_id, sums)
        if table == "ref_counts":
            days: dict[tuple, list[int]] = defaultdict(lambda: [0])
            for (hour, ref_id), (total,) in sums.items():
                days[(hour - hour % DAY, ref_id)][0] += total
            _lower(conn, "ref_days", site_id, dict(days))
    anonymous = conn.execute(
        f"SELECT created_at - created_at % {DAY}, count(*) FROM hits WHERE site_id = ?"
        f" AND path_id IN ({','.join('?' * len(path_ids))}) AND session IS NULL"
        " AND first_visit = 1 GROUP BY 1", [site_id, *path_ids]).fetchall()
    _lower(conn, "anonymous_days", site_id, {(r[0],): [r[1]] for r in anonymous})


def _lower_site_counts(conn: sqlite3.Connection, site_id: int,
                       amounts: dict[tuple, list[int]]) -> None:
    conn.executemany(
        "UPDATE site_counts SET total = total - ?, events = events - ?,"
        " pageviews = pageviews - ? WHERE site_id = ? AND hour = ?",
        [(*v, site_id, *k) for k, v in amounts.items()])
    conn.executemany("DELETE FROM site_counts WHERE site_id = ? AND hour = ? AND pageviews <= 0",
                     [(site_id, *k) for k in amounts])


def _delete_rows(conn: sqlite3.Connection, site_id: int, path_ids: list[int]) -> None:
    """Every row of the paths in the per-path tables, the hits and the sessions' lists."""
    marks = ",".join("?" * len(path_ids))
    for table in [*PER_PATH, "path_months", "hits"]:
        conn.execute(f"DELETE FROM {table} WHERE site_id = ? AND path_id IN ({marks})",
                     [site_id, *path_ids])
    conn.execute(f"DELETE FROM session_paths WHERE path_id IN ({marks})", path_ids)


def purge(conn: sqlite3.Connection, site_id: int, path_ids: list[int]) -> int:
    """Remove paths of a site with their hits and statistics (inside the caller's write
    transaction); returns the pageviews removed."""
    found = [p["id"] for p in of_site(conn, site_id, path_ids)]
    if not found:
        return 0
    removed = hits_of(conn, site_id, found)
    _lower_site_tables(conn, site_id, found)
    _delete_rows(conn, site_id, found)
    marks = ",".join("?" * len(found))
    conn.execute(f"DELETE FROM paths WHERE site_id = ? AND id IN ({marks})", [site_id, *found])
    store.forget_ids(conn)
    return removed


def _move(conn: sqlite3.Connection, table: str, site_id: int, target: int,
          sources: list[int]) -> None:
    """Add the sources' rows of a per-path table to the target's, then drop them."""
    keys: tuple[str, ...]
    counts: tuple[str, ...]
    if table == "path_months":
        keys, counts = ("month", "path_id"), tuple(MONTH_COLUMNS)
    else:
        keys, counts = aggregates.TABLES[table]
    rest = [k for k in keys if k != "path_id"]
    marks = ",".join("?" * len(sources))
    cols = ["site_id", *keys, *counts]
    picked = ["site_id", *("? AS path_id" if k == "path_id" else k for k in keys),
              *(f"sum({c})" for c in counts)]
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
    conn.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(picked)} FROM {table}"
        f" WHERE site_id = ? AND path_id IN ({marks}) GROUP BY {', '.join(['site_id', *rest])}"
        f" ON CONFLICT (site_id, {', '.join(keys)}) DO UPDATE SET {updates}",
        [target, site_id, *sources])
    conn.execute(f"DELETE FROM {table} WHERE site_id = ? AND path_id IN ({marks})",
                 [site_id, *sources])


def merge(conn: sqlite3.Connection, site_id: int, target_id: int, path_ids: list[int]) -> int:
    """Make paths of a site part of `target_id` (inside the caller's write transaction):
    their hits and statistics count for it from now on and they are gone; returns the
    pageviews moved."""
    targets = of_site(conn, site_id, [target_id])
    if not targets:
        return 0
    target = targets[0]
    sources = [p for p in of_site(conn, site_id, path_ids) if p["id"] != target_id]
    if not sources:
        return 0
    ids = [p["id"] for p in sources]
    moved = sum(p["hits"] for p in sources)
    # Visits on event paths are counted apart per site: moving between an event path
    # and a pageview path moves them between the two.
    for p in sources:
        if bool(p["event"]) != bool(target["event"]):
            sign = 1 if target["event"] else -1
            conn.executemany(
                "UPDATE site_counts SET events = events + ? WHERE site_id = ? AND hour = ?",
                [(sign * total, site_id, hour) for hour, total in conn.execute(
                    "SELECT hour, total FROM hit_counts WHERE site_id = ? AND path_id = ?",
                    (site_id, p["id"]))])
    for table in [*PER_PATH, "path_months"]:
        _move(conn, table, site_id, target_id, ids)
    marks = ",".join("?" * len(ids))
    conn.execute(f"UPDATE hits SET path_id = ? WHERE site_id = ? AND path_id IN ({marks})",
                 [target_id, site_id, *ids])
    conn.execute("INSERT INTO session_paths (session, path_id) SELECT DISTINCT session, ?"
                 f" FROM session_paths WHERE path_id IN ({marks}) ON CONFLICT DO NOTHING",
                 [target_id, *ids])
    conn.execute(f"DELETE FROM session_paths WHERE path_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM paths WHERE site_id = ? AND id IN ({marks})", [site_id, *ids])
    store.forget_ids(conn)
    return moved

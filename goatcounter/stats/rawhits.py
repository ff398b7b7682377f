"""Answers that no aggregate holds, read from the raw hits: the widgets under two or more
dimension filters at once, a dimension's list under a filter on another one, pageviews
under a dimension filter, and unique visitors under any filter.

Only for ranges with at most `cap` pageviews (DASHBOARD_RAW_HITS), and only where the
hits table holds every pageview of the range (sites may keep only the aggregates, and
old hits may have been removed): anything else is refused with the reason, which the
dashboard shows instead of numbers that would be wrong.

One read: the matching hits of the range go into a materialized CTE, and each list is a
GROUP BY over it, in one statement.
"""
from __future__ import annotations

import dataclasses
import sqlite3
from collections import defaultdict
from typing import Any

from goatcounter.counting.pipeline import languages
from goatcounter.stats import dims
from goatcounter.stats.filters import IN_PATHS, PathSet
from goatcounter.stats.ranges import DAY, HOUR, Range
from goatcounter.stats.refs import link_domain_prefix
from goatcounter.stats.segments import SIZE_CLASSES, Segment, hit_conditions
from goatcounter.storage import db

_LISTS = ("ref", "browser", "system", "location", "size", "language", "campaign")


@dataclasses.dataclass(frozen=True)
class Span:
    """The seconds a range's answers cover: its hours for the totals, paths and
    referrers; its whole UTC days for the daily lists."""

    h0: int
    h1: int
    d0: int
    d1: int

    @classmethod
    def of(cls, rng: Range) -> Span:
        d0, d1 = rng.daily_span()
        return cls(rng.first_hour, rng.last_hour + HOUR - 1, d0, d1 + DAY - 1)

    @property
    def lo(self) -> int:
        return min(self.h0, self.d0)

    @property
    def hi(self) -> int:
        return max(self.h1, self.d1)


def refusal(conn: sqlite3.Connection, site_id: int, rng: Range, cap: int) -> str | None:
    """Why the range can't be answered from raw hits, or None when it can."""
    span = Span.of(rng)
    pageviews = conn.execute(
        "SELECT coalesce(sum(pageviews), 0) FROM site_counts WHERE site_id = :site"
        " AND hour >= :lo AND hour <= :hi",
        {"site": site_id, "lo": span.lo, "hi": span.hi}).fetchone()[0]
    if pageviews > cap:
        return "too many"
    kept = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM hits WHERE site_id = :site AND created_at >= :lo"
        " AND created_at <= :hi LIMIT :most) kept",
        {"site": site_id, "lo": span.lo, "hi": span.hi, "most": cap + 1}).fetchone()[0]
    return None if kept == pageviews else "not kept"


def _where(site_id: int, span: Span, paths: PathSet, segment: Segment) -> tuple[str, dict]:
    args: dict[str, Any] = {"site": site_id, "lo": span.lo, "hi": span.hi, "h0": span.h0,
                            "h1": span.h1, "d0": span.d0, "d1": span.d1}
    cond = hit_conditions(segment, args)
    if not paths.everything:
        args["paths"] = paths.json()
        cond += " AND " + IN_PATHS
    return ("FROM hits WHERE site_id = :site AND created_at >= :lo AND created_at <= :hi"
            + cond), args


_IN_HOURS = "created_at >= :h0 AND created_at <= :h1"
_IN_DAYS = "created_at >= :d0 AND created_at <= :d1"


def _statement(source: str) -> str:
    """Every list in one statement: rows of (list, key, text key, visits, pageviews). A
    list keyed by text (locations, languages, campaign sources) has its key in the text
    column, the others in the first: one column may hold one type only."""
    parts = [
        f"SELECT 'hour', (created_at - :h0) / {HOUR}, NULL, sum(first_visit), count(*)"
        f" FROM f WHERE {_IN_HOURS} GROUP BY 2",
        f"SELECT 'path', path_id, NULL, sum(first_visit), count(*) FROM f WHERE {_IN_HOURS}"
        " GROUP BY path_id",
        f"SELECT 'ref', ref_id, NULL, count(*), 0 FROM f WHERE first_visit = 1"
        f" AND {_IN_HOURS} GROUP BY ref_id",
        # Each path's visits by hour, for the charts of the listed paths (the hour goes
        # where the other lists have pageviews).
        f"SELECT 'ph', path_id, NULL, count(*), (created_at - :h0) / {HOUR} AS h FROM f"
        f" WHERE first_visit = 1 AND {_IN_HOURS} GROUP BY path_id, h",
        "SELECT 'visitors', count(DISTINCT session), NULL,"
        " sum(CASE WHEN session IS NULL THEN 1 ELSE 0 END), 0 FROM f"
        f" WHERE first_visit = 1 AND {_IN_DAYS}",
    ]
    for kind, column in (("browser", "browser_id"), ("system", "system_id"),
                         ("location", "location"), ("size", "width"),
                         ("language", "language")):
        keys = f"NULL, {column}" if kind in ("location", "language") else f"{column}, NULL"
        parts.append(f"SELECT '{kind}', {keys}, count(*), 0 FROM f WHERE first_visit = 1"
                     f" AND {_IN_DAYS} GROUP BY {column}")
    # A campaign's sources are the referrers its visits came with.
    parts.append("SELECT 'campaign', NULL, campaign_id || ' ' || ref_id, count(*), 0 FROM f"
                 f" WHERE first_visit = 1 AND campaign_id IS NOT NULL AND {_IN_DAYS}"
                 " GROUP BY campaign_id, ref_id")
    return (f"WITH f AS MATERIALIZED (SELECT path_id, ref_id, browser_id, system_id,"
            f" campaign_id, session, first_visit, width, location, language, created_at"
            f" {source}) " + " UNION ALL ".join(parts))


@dataclasses.dataclass
class Counts:
    """Everything the dashboard shows, counted from the matching raw hits."""

    hours: list[tuple[int, int, int]]  # (hour number in the range, visits, pageviews)
    paths: dict[int, tuple[int, int]]  # path id: (visits, pageviews)
    lists: dict[str, dict[Any, int]]  # kind: {key: visits}
    campaign_sources: dict[int, dict[int, int]]  # campaign id: {ref id: visits}
    visitors: int
    span: Span
    path_hours: dict[int, list[tuple[int, int]]] = dataclasses.field(default_factory=dict)


def count(conn: sqlite3.Connection, site_id: int, rng: Range, paths: PathSet,
          segment: Segment) -> Counts:
    """The matching hits of the range, counted (call `refusal` first)."""
    span = Span.of(rng)
    source, args = _where(site_id, span, paths, segment)
    hours: list[tuple[int, int, int]] = []
    per_path: dict[int, tuple[int, int]] = {}
    lists: dict[str, dict[Any, int]] = {k: {} for k in _LISTS}
    sources: dict[int, dict[int, int]] = defaultdict(dict)
    visitors = 0
    hours_of: dict[int, list[tuple[int, int]]] = defaultdict(list)
    if not paths.nothing and not rng.empty:
        for kind, number, text, visits, views in conn.execute(_statement(source), args):
            key = number if text is None else text
            if kind == "ph":
                hours_of[key].append((views, visits))
            elif kind == "hour":
                hours.append((key, visits, views))
            elif kind == "path":
                per_path[key] = (visits, views)
            elif kind == "visitors":
                visitors = (key or 0) + (visits or 0)
            elif kind == "campaign":
                campaign, ref = map(int, key.split())
                sources[campaign][ref] = visits
                lists["campaign"][campaign] = lists["campaign"].get(campaign, 0) + visits
            else:
                lists[kind][key] = visits
    return Counts(hours, per_path, lists, dict(sources), visitors, span, dict(hours_of))


# Lists in the API's shapes (as dims.LISTS and refs.top_refs return them) -----------

def _names(conn: sqlite3.Connection, table: str, ids: list[int]) -> dict[int, tuple]:
    # `table` is a fixed name (browsers, systems, refs, campaigns).
    cols = {"browsers": "name, version", "systems": "name, version",
            "refs": "ref, ref_scheme", "campaigns": "name, ''"}[table]
    rows = conn.execute(f"SELECT id, {cols} FROM {table} WHERE "
                        + db.in_list("id", "ids"), {"ids": db.list_param(ids)})
    return {r[0]: (r[1], r[2]) for r in rows}


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    items.sort(key=lambda s: (-s["count"], s["name"]))
    return {"stats": items[:limit], "more": len(items) > limit}


def _stat(ident: str, name: str, count: int) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ident or name} if ident or name else {}
    out.update(name=name, count=count)
    return out


def items(conn: sqlite3.Connection, site: dict[str, Any], counts: Counts, kind: str,
          detail: str | None, limit: int) -> dict[str, Any]:
    """The list of one kind among the matching hits; with `detail` (the value this kind
    is filtered on, or the one a widget is set to show), what the API's detail of that
    value lists (versions, regions, widths, sources) among them."""
    found = counts.lists[kind]
    if kind == "ref":
        return _refs(conn, site, found, limit)
    if kind in ("browser", "system"):
        names = _names(conn, kind + "s", [k for k in found if k is not None])
        grouped: dict[str, int] = defaultdict(int)
        for key, n in found.items():
            if key is None:
                continue
            name, version = names[key]
            if detail and name.lower() != detail.lower():
                continue
            grouped[f"{name} {version}".strip() if detail else name] += n
        if detail:
            return _page([{"name": k, "count": n} for k, n in grouped.items() if n], limit)
        return _page([_stat("", k, n) for k, n in grouped.items() if n], limit)
    if kind == "location":
        grouped = defaultdict(int)
        for key, n in found.items():
            if detail and key[:2].upper() != detail.upper():
                continue
            grouped[key if detail else key[:2]] += n
        if detail:
            return _page([{"name": dims.locations.region_name(k) or dims.UNKNOWN, "count": n}
                          for k, n in grouped.items() if n], limit)
        return _page([_stat(k or dims.UNKNOWN, dims.country_name(k), n)
                      for k, n in grouped.items() if n], limit)
    if kind == "size":
        if detail:
            wanted = detail.lower()
            return _page([{"name": f"{dims.WIDTH_PREFIX}{k}px", "count": n}
                          for k, n in found.items() if n and size_class(k) == wanted], limit)
        classes: dict[str, int] = dict.fromkeys(SIZE_CLASSES, 0)
        for width, n in found.items():
            classes[size_class(width)] += n
        return {"stats": [{"id": k, "name": "", "count": n} for k, n in classes.items()],
                "more": False}
    if kind == "language":
        return _page([_stat(k or dims.UNKNOWN, languages.name(k), n)
                      for k, n in found.items() if n], limit)
    if kind == "campaign":
        if detail:
            sources = counts.campaign_sources.get(int(detail), {})
            names = _names(conn, "refs", list(sources))
            return _page([{"name": names[k][0], "count": n} for k, n in sources.items() if n],
                         limit)
        names = _names(conn, "campaigns", list(found))
        return _page([_stat(str(k), names[k][0], n) for k, n in found.items() if n], limit)
    raise ValueError(kind)


def size_class(width: int) -> str:
    """The size class of a width, as stats/sizes groups them."""
    if width <= 0:
        return "unknown"
    for name, (low, high) in SIZE_CLASSES.items():
        if name != "unknown" and low <= width <= high:
            return name
    return "desktophd"


def _refs(conn: sqlite3.Connection, site: dict[str, Any], found: dict[Any, int],
          limit: int) -> dict[str, Any]:
    names = _names(conn, "refs", list(found))
    own = link_domain_prefix(site.get("link_domain") or "").lower()
    rows = []
    for ref_id, n in found.items():
        ref, scheme = names[ref_id]
        if not n or (own and ref.lower().startswith(own)):
            continue
        item: dict[str, Any] = {"id": ref} if ref else {}
        item.update(name=ref, count=n, ref_scheme=scheme, _id=ref_id)
        rows.append(item)
    rows.sort(key=lambda s: (-s["count"], s["_id"]))
    for row in rows:
        del row["_id"]
    return {"stats": rows[:limit], "more": len(rows) > limit}

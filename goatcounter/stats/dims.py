"""GET /api/v0/stats/{page} and /stats/{page}/{id} for browsers, systems, locations,
languages, sizes and campaigns: visits per item over the range's UTC days.

Site-wide questions read the per-site `<dim>_days` tables (a few rows per day); with a
path filter the per-path `<dim>_stats` tables are read by their primary key.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from goatcounter.counting.pipeline import languages, locations, sizes
from goatcounter.errors import BadRequest
from goatcounter.stats.filters import IN_PATHS, PathSet
from goatcounter.stats.query import go_quote
from goatcounter.stats.ranges import Range
from goatcounter.storage import db

# page: (per-site table, per-path table, key column). Fixed names, never request text.
TABLES = {
    "browsers": ("browser_days", "browser_stats", "browser_id"),
    "systems": ("system_days", "system_stats", "system_id"),
    "locations": ("location_days", "location_stats", "location"),
    "languages": ("language_days", "language_stats", "language"),
    "sizes": ("size_days", "size_stats", "width"),
    "campaigns": ("campaign_days", "campaign_stats", "campaign_id"),
}

# Upstream names countries as its GeoIP database does; where that differs from
# pycountry, its names win so that clients see the same text.
_COUNTRY_NAMES = {
    "NL": "The Netherlands", "RU": "Russia", "CI": "Ivory Coast", "BN": "Brunei",
    "CG": "Congo Republic", "CD": "DR Congo", "KN": "St Kitts and Nevis",
    "VC": "St Vincent and Grenadines", "FM": "Federated States of Micronesia",
    "PS": "Palestine", "VA": "Vatican City", "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands", "FK": "Falkland Islands", "MF": "Saint Martin",
    "SX": "Sint Maarten", "BQ": "Bonaire, Sint Eustatius, and Saba", "SH": "Saint Helena",
    "CC": "Cocos [Keeling] Islands", "AX": "Åland", "ST": "São Tomé and Príncipe",
    "UM": "U.S. Outlying Islands",
}
UNKNOWN = "(unknown)"
# U+2194 and U+FE0E (text presentation), as upstream writes a width.
WIDTH_PREFIX = "\u2194\ufe0e "


def country_name(code: str) -> str:
    return _COUNTRY_NAMES.get(code.upper()) or locations.country_name(code)


class Query:
    """One daily question: a site, the range's UTC days and a path set."""

    def __init__(self, conn: sqlite3.Connection, site_id: int, rng: Range,
                 paths: PathSet) -> None:
        self.conn, self.paths = conn, paths
        d0, d1 = rng.daily_span()
        self.args: dict[str, Any] = {"site": site_id, "d0": d0, "d1": d1}
        if not paths.everything:
            self.args["paths"] = paths.json()

    def source(self, page: str, where: str = "") -> str:
        """The rows of a page's table within the range (and path set), as a sub-select
        with the key column and `total`; `where` is a fixed extra condition."""
        site_table, path_table, key = TABLES[page]
        table = site_table if self.paths.everything else path_table
        cond = "" if self.paths.everything else " AND " + IN_PATHS
        rows = (f"SELECT {key} AS key, total FROM {table} WHERE site_id = :site"
                f" AND day >= :d0 AND day <= :d1{cond}")
        # `where` names the column `key`, which only the outer select may (both engines
        # fold the two selects into one).
        return f"SELECT key, total FROM ({rows}) k WHERE true{where}" if where else rows

    def rows(self, sql: str, **args: Any) -> list[sqlite3.Row]:
        if self.paths.nothing:
            return []
        return self.conn.execute(sql, {**self.args, **args}).fetchall()


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """A list reply from up to limit + 1 items."""
    return {"stats": items[:limit], "more": len(items) > limit}


def _sorted_page(items: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    """Sort by visits (most first), then name, and cut out one page."""
    items.sort(key=lambda s: (-s["count"], s["name"]))
    return _page(items[offset:offset + limit + 1], limit)


def _stat(ident: str, name: str, count: int) -> dict[str, Any]:
    # An item without an id of its own shows its name as id (left out when empty).
    out: dict[str, Any] = {"id": ident or name} if ident or name else {}
    out.update(name=name, count=count)
    return out


# Lists ------------------------------------------------------------------------------

def _named_list(q: Query, page: str, table: str, limit: int, offset: int) -> dict[str, Any]:
    # Grouped by name: a browser or system has a row per version.
    rows = q.rows(
        f"SELECT n.name AS name, sum(x.count) AS count FROM (SELECT key, sum(total) AS count"
        f" FROM ({q.source(page)}) s GROUP BY key) x JOIN {table} n ON n.id = x.key"
        " GROUP BY n.name HAVING sum(x.count) > 0 ORDER BY count DESC, n.name"
        " LIMIT :limit OFFSET :offset",
        limit=limit + 1, offset=offset)
    return _page([_stat("", r["name"], r["count"]) for r in rows], limit)


def browsers(q: Query, limit: int, offset: int) -> dict[str, Any]:
    return _named_list(q, "browsers", "browsers", limit, offset)


def systems(q: Query, limit: int, offset: int) -> dict[str, Any]:
    return _named_list(q, "systems", "systems", limit, offset)


def location_list(q: Query, limit: int, offset: int) -> dict[str, Any]:
    rows = q.rows(f"SELECT substr(key, 1, 2) AS code, sum(total) AS count"
                  f" FROM ({q.source('locations')}) s GROUP BY code HAVING sum(total) > 0")
    items = [_stat(r["code"] or UNKNOWN, country_name(r["code"]), r["count"]) for r in rows]
    return _sorted_page(items, limit, offset)


def language_list(q: Query, limit: int, offset: int) -> dict[str, Any]:
    rows = q.rows(f"SELECT key, sum(total) AS count FROM ({q.source('languages')}) s"
                  " GROUP BY key HAVING sum(total) > 0")
    items = [_stat(r["key"] or UNKNOWN, languages.name(r["key"]), r["count"]) for r in rows]
    return _sorted_page(items, limit, offset)


# The size classes as SQL conditions on `key` (the width), in their fixed order.
_SIZE_CASE = "CASE WHEN key <= 0 THEN 'unknown' " + " ".join(
    f"WHEN key <= {high} THEN '{name}'" for name, _low, high in sizes.CLASSES
    if name != "unknown") + " ELSE 'desktophd' END"


def size_list(q: Query, limit: int, offset: int) -> dict[str, Any]:
    """Always the five classes, in their order, zeros included; no paging."""
    rows = q.rows(f"SELECT {_SIZE_CASE} AS class, sum(total) AS count"
                  f" FROM ({q.source('sizes')}) s GROUP BY class")
    found = {r["class"]: r["count"] for r in rows}
    return {"stats": [{"id": name, "name": "", "count": found.get(name, 0)}
                      for name, _low, _high in sizes.CLASSES], "more": False}


def campaign_list(q: Query, limit: int, offset: int) -> dict[str, Any]:
    rows = q.rows(
        f"SELECT x.key AS id, c.name AS name, x.count AS count FROM (SELECT key,"
        f" sum(total) AS count FROM ({q.source('campaigns')}) s GROUP BY key) x"
        " JOIN campaigns c ON c.id = x.key AND c.site_id = :site WHERE x.count > 0"
        f" ORDER BY x.count DESC, {db.bytewise('c.name')}, x.key"
        " LIMIT :limit OFFSET :offset",
        limit=limit + 1, offset=offset)
    return _page([_stat(str(r["id"]), r["name"], r["count"]) for r in rows], limit)


LISTS: dict[str, Callable[[Query, int, int], dict[str, Any]]] = {
    "browsers": browsers, "systems": systems, "locations": location_list,
    "languages": language_list, "sizes": size_list, "campaigns": campaign_list,
}


# Details ----------------------------------------------------------------------------

def _versions(q: Query, page: str, table: str, name: str, limit: int,
              offset: int) -> dict[str, Any]:
    # The name is matched ignoring (ASCII) case, as upstream.
    source = q.source(
        page, f" AND key IN (SELECT id FROM {table} WHERE lower(name) = lower(:name))")
    rows = q.rows(
        f"SELECT trim(n.name || ' ' || n.version) AS name, sum(x.total) AS visits"
        f" FROM ({source}) x JOIN {table} n ON n.id = x.key GROUP BY x.key, n.name, n.version"
        " HAVING sum(x.total) > 0 ORDER BY visits DESC, 1 LIMIT :limit OFFSET :offset",
        name=name, limit=limit + 1, offset=offset)
    return _page([{"name": r["name"], "count": r["visits"]} for r in rows], limit)


def browser(q: Query, ident: str, limit: int, offset: int) -> dict[str, Any]:
    return _versions(q, "browsers", "browsers", ident, limit, offset)


def system(q: Query, ident: str, limit: int, offset: int) -> dict[str, Any]:
    return _versions(q, "systems", "systems", ident, limit, offset)


def location(q: Query, ident: str, limit: int, offset: int) -> dict[str, Any]:
    """The regions of a country (exact code); `(unknown)` is the visits without a
    location. A row without a region, or with one that has no name, is `(unknown)`."""
    if ident == UNKNOWN:
        where, arg = " AND key = ''", ""
    else:
        where, arg = " AND (key = :country OR substr(key, 1, 3) = :country || '-')", ident
    rows = q.rows(f"SELECT key, sum(total) AS count FROM ({q.source('locations', where)}) s"
                  " GROUP BY key HAVING sum(total) > 0", country=arg)
    items = [{"name": locations.region_name(r["key"]) or UNKNOWN, "count": r["count"]}
             for r in rows]
    return _sorted_page(items, limit, offset)


def size(q: Query, ident: str, limit: int, offset: int) -> dict[str, Any]:
    """The widths of one size class."""
    bounds = {name: (low, high) for name, low, high in sizes.CLASSES}
    if ident.lower() not in bounds:
        raise BadRequest(f"unknown size class {go_quote(ident)}; must be one of "
                         + ", ".join(name for name, _, _ in sizes.CLASSES))
    low, high = bounds[ident.lower()]
    rows = q.rows(f"SELECT key, sum(total) AS count FROM ({q.source('sizes')}) s"
                  " WHERE key >= :low AND key <= :high GROUP BY key HAVING sum(total) > 0",
                  low=low, high=high)
    items = [{"name": f"{WIDTH_PREFIX}{r['key']}px", "count": r["count"]} for r in rows]
    return _sorted_page(items, limit, offset)


def campaign(q: Query, ident: int, limit: int, offset: int) -> dict[str, Any]:
    """The sources (utm_source etc.) of one campaign."""
    site_table, path_table, _ = TABLES["campaigns"]
    table = site_table if q.paths.everything else path_table
    cond = "" if q.paths.everything else " AND " + IN_PATHS
    rows = q.rows(
        f"SELECT ref AS name, sum(total) AS count FROM {table} WHERE site_id = :site"
        f" AND day >= :d0 AND day <= :d1 AND campaign_id = :campaign{cond}"
        " GROUP BY ref HAVING sum(total) > 0 ORDER BY count DESC, ref"
        " LIMIT :limit OFFSET :offset",
        campaign=ident, limit=limit + 1, offset=offset)
    return _page([{"name": r["name"], "count": r["count"]} for r in rows], limit)

"""Filters on what a visit came with (beyond its path): a referrer, browser, system,
screen size class, country, language or campaign. The dashboard narrows every widget
to the visits that match all of them.

A filter is given by what the lists show (a browser's name, a country's code, a size
class's id), and resolved here to the keys the tables hold: ids of `browsers`,
`systems` and `refs`, location keys, widths, language codes, campaign ids.
"""
from __future__ import annotations

import dataclasses
import re
import sqlite3
from typing import Any

from goatcounter.counting.pipeline import sizes
from goatcounter.errors import BadRequest, NotFound
from goatcounter.stats import dims
from goatcounter.stats.query import go_quote, parse_int
from goatcounter.storage import db

# The kinds of filter, in the order the dashboard shows them.
KINDS = ("ref", "campaign", "browser", "system", "size", "location", "language")
# kind: (per-site daily table, per-path daily table, key column); the referrer's
# tables are hourly and are read by refs.py and segmented.py themselves.
TABLES = {kind.removesuffix("s"): tables for kind, tables in dims.TABLES.items()}
# The column of `hits` each kind is about.
HIT_COLUMNS = {"ref": "ref_id", "browser": "browser_id", "system": "system_id",
               "location": "location", "size": "width", "language": "language",
               "campaign": "campaign_id"}
SIZE_CLASSES = {name: (low, high) for name, low, high in sizes.CLASSES}
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
MAX_TEXT = 1000


@dataclasses.dataclass(frozen=True)
class Dim:
    """One filter: its kind, the value as given, and the table keys it stands for."""

    kind: str
    value: str
    keys: tuple[Any, ...]

    def json(self) -> str:
        return db.list_param(self.keys)


@dataclasses.dataclass(frozen=True)
class Segment:
    """All the dimension filters of a request (at most one per kind)."""

    dims: tuple[Dim, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.dims

    def get(self, kind: str) -> Dim | None:
        return next((d for d in self.dims if d.kind == kind), None)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(d.kind for d in self.dims)


NONE = Segment()


def _ids(conn: sqlite3.Connection, sql: str, args: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(r[0] for r in conn.execute(sql, args))


def _used(conn: sqlite3.Connection, site_id: int, table: str, column: str,
          keys: tuple[Any, ...]) -> bool:
    """Whether the site has any visit with one of these keys (an index seek per key)."""
    if not keys:
        return False
    return conn.execute(
        f"SELECT 1 FROM {table} WHERE site_id = :site AND "
        + db.in_list(column, "keys") + " LIMIT 1",
        {"site": site_id, "keys": db.list_param(keys)}).fetchone() is not None


def _keys(conn: sqlite3.Connection, site_id: int, kind: str, value: str) -> tuple[Any, ...]:
    """The table keys of a filter value; BadRequest for a malformed one."""
    if kind == "ref":
        # As stats/toprefs/{ref}: the name in any case, whatever its scheme.
        return _ids(conn, "SELECT id FROM refs WHERE lower(ref) = lower(:v) AND id != 1",
                    {"v": value})
    if kind in ("browser", "system"):
        table = "browsers" if kind == "browser" else "systems"
        return _ids(conn, f"SELECT id FROM {table} WHERE lower(name) = lower(:v)", {"v": value})
    if kind == "campaign":
        number = parse_int(value)
        if number is None:
            raise BadRequest(f"campaign must be a campaign's number, not {go_quote(value)}")
        return _ids(conn, "SELECT id FROM campaigns WHERE site_id = :site AND id = :id",
                    {"site": site_id, "id": number})
    if kind == "size":
        if value.lower() not in SIZE_CLASSES:
            raise BadRequest(f"unknown size class {go_quote(value)}; must be one of "
                             + ", ".join(SIZE_CLASSES))
        low, high = SIZE_CLASSES[value.lower()]
        cond = "width <= 0" if value.lower() == "unknown" else "width >= :low AND width <= :high"
        return _ids(conn, f"SELECT DISTINCT width FROM size_days WHERE site_id = :site AND {cond}",
                    {"site": site_id, "low": low, "high": high})
    if kind == "location":
        if not _COUNTRY.match(value):
            raise BadRequest(f"location must be a two-letter country code, not {go_quote(value)}")
        code = value.upper()
        return _ids(conn, "SELECT DISTINCT location FROM location_days WHERE site_id = :site"
                    " AND (location = :c OR substr(location, 1, 3) = :c || '-')",
                    {"site": site_id, "c": code})
    if kind == "language":
        if not _LANGUAGE.match(value):
            raise BadRequest(f"language must be an ISO 639 code, not {go_quote(value)}")
        return (value,)
    raise BadRequest(f"unknown filter {go_quote(kind)}")


_USED = {"ref": ("ref_counts", "ref_id"), **{k: (t[1], t[2]) for k, t in TABLES.items()}}


def resolve(conn: sqlite3.Connection, site_id: int, given: dict[str, str]) -> Segment:
    """The segment of the filters given as {kind: value}; NotFound when one matches
    nothing the site ever counted, BadRequest when one can't be a value of its kind."""
    dims = []
    for kind in KINDS:
        if kind not in given:
            continue
        value = given[kind].strip()
        if not value or len(value) > MAX_TEXT:
            raise BadRequest(f"the {kind} filter must be 1 to {MAX_TEXT} characters")
        keys = _keys(conn, site_id, kind, value)
        table, column = _USED[kind]
        if not _used(conn, site_id, table, column, keys):
            raise NotFound(f"no visits with {kind} {go_quote(value)} on this site")
        if kind == "location":
            value = value.upper()
        elif kind == "size":
            value = value.lower()
        dims.append(Dim(kind, value, keys))
    return Segment(tuple(dims))


def hit_conditions(segment: Segment, args: dict[str, Any]) -> str:
    """SQL conditions on `hits` for every filter of the segment (fixed text; the keys go
    into `args`)."""
    conds = []
    for i, dim in enumerate(segment.dims):
        name = f"seg{i}"
        args[name] = dim.json()
        conds.append(db.in_list(HIT_COLUMNS[dim.kind], name))
    return "".join(" AND " + c for c in conds)

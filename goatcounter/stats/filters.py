"""Which paths a stats question is about: `include_paths` / `exclude_paths` (ids, or
names with `path_by_name`) and the dashboard-style `filter` text.

A set of paths goes into SQL as one list parameter (db.in_list), so any number of ids
costs one parameter and the queries stay fixed text.
"""
from __future__ import annotations

import dataclasses
import sqlite3

from goatcounter.errors import BadRequest
from goatcounter.stats.query import int_error, parse_int
from goatcounter.storage import db


@dataclasses.dataclass(frozen=True)
class PathSet:
    """Some of a site's paths; `ids` None means all of them."""

    ids: tuple[int, ...] | None = None

    @property
    def everything(self) -> bool:
        return self.ids is None

    @property
    def nothing(self) -> bool:
        return self.ids is not None and not self.ids

    def json(self) -> str:
        # Kept once made: a request may pass a set of thousands of paths to many queries.
        cached = self.__dict__.get("_json")
        if cached is None:
            cached = db.list_param(self.ids or ())
            object.__setattr__(self, "_json", cached)
        return cached

    def intersect(self, other: PathSet) -> PathSet:
        if self.ids is None:
            return other
        if other.ids is None:
            return self
        keep = set(other.ids)
        return PathSet(tuple(i for i in self.ids if i in keep))


ALL = PathSet()
# The condition the queries add for a path set; `:paths` is PathSet.json().
IN_PATHS = db.in_list("path_id", "paths")


def parse_ids(values: list[str], field: str) -> list[int]:
    out = []
    for text in values:
        number = parse_int(text)
        if number is None:
            raise BadRequest(f"invalid number in {field}: {int_error(text)}")
        out.append(number)
    return out


def by_name(conn: sqlite3.Connection, site_id: int, names: list[str]) -> list[int]:
    """Ids of the paths named exactly so once lower-cased, as upstream matches them (so
    only lower-case names can match). The first condition lets the index find them."""
    rows = conn.execute(
        "SELECT id FROM paths WHERE site_id = :site AND " + db.in_list(db.nocase("path"), "names")
        + " AND " + db.in_list("lower(path)", "names"),
        {"site": site_id, "names": db.list_param(names)}).fetchall()
    return [r[0] for r in rows]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_KEYWORDS = {"at:start", "at:end", "is:event", "is:pageview", "in:path", "in:title", ":not"}


def matching(conn: sqlite3.Connection, site_id: int, text: str) -> list[int]:
    """Ids of the paths a dashboard filter selects: the words are looked for in the path
    or title, ignoring case; `in:path` / `in:title` look in one of them, `at:start` /
    `at:end` anchor the text, `is:event` / `is:pageview` keep one kind, and `:not`
    keeps the paths that don't contain the text."""
    words = text.split()
    flags = {w for w in words if w in _KEYWORDS}
    needle = " ".join(w for w in words if w not in _KEYWORDS)
    conds = []
    if "is:event" in flags:
        conds.append("event = 1")
    if "is:pageview" in flags:
        conds.append("event = 0")
    if needle:
        like = ("" if "at:start" in flags else "%") + _like(needle) + \
            ("" if "at:end" in flags else "%")
        cols = [c for c, flag in (("path", "in:path"), ("title", "in:title")) if flag in flags] \
            or ["path", "title"]
        match = "(" + " OR ".join(f"{c} LIKE :like ESCAPE '\\'" for c in cols) + ")"
        conds.append(f"NOT {match}" if ":not" in flags else match)
        args: dict[str, object] = {"site": site_id, "like": like}
    else:
        args = {"site": site_id}
    where = " AND ".join(conds) or "true"
    # `where` is built from the fixed fragments above; the text is a parameter.
    rows = conn.execute(f"SELECT id FROM paths WHERE site_id = :site AND {where}", args)
    return [r[0] for r in rows]


def include(conn: sqlite3.Connection, site_id: int, values: list[str], names: bool,
            text: str = "") -> PathSet:
    """The paths of `include_paths` (and `filter`)."""
    out = ALL
    if values:
        ids = by_name(conn, site_id, values) if names else parse_ids(values, "include_paths")
        out = PathSet(tuple(dict.fromkeys(ids)))
    if text:
        out = out.intersect(PathSet(tuple(matching(conn, site_id, text))))
    return out


def exclude(conn: sqlite3.Connection, site_id: int, values: list[str], names: bool) -> list[int]:
    """The paths of `exclude_paths`."""
    if not values:
        return []
    return by_name(conn, site_id, values) if names else parse_ids(values, "exclude_paths")


def without_events(conn: sqlite3.Connection, site_id: int, paths: PathSet) -> PathSet | None:
    """The paths of `paths` that aren't events, or None when none of them is an event
    (so that a site without events keeps the cheaper site-wide reads)."""
    if paths.nothing:
        return None
    events = set(matching(conn, site_id, "is:event"))
    if paths.ids is not None:
        events.intersection_update(paths.ids)
    if not events:
        return None
    if paths.ids is None:
        return PathSet(tuple(matching(conn, site_id, "is:pageview")))
    return PathSet(tuple(i for i in paths.ids if i not in events))

"""Referrers: GET /api/v0/stats/hits/{path_id} (the referrers of one path),
/stats/toprefs (the site's referrers) and /stats/toprefs/{ref} (the paths a referrer
sent visits to). Referrers are counted per hour, so these follow the range to the hour.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from goatcounter.stats.filters import IN_PATHS, PathSet
from goatcounter.stats.ranges import Range
from goatcounter.storage import db


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def link_domain_prefix(link_domain: str) -> str:
    """The site's own domain as stored referrers start with it (no scheme)."""
    text = link_domain.strip()
    for scheme in ("http://", "https://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    return text.rstrip("/")


def _hour_args(rng: Range) -> dict[str, Any]:
    return {"h0": rng.first_hour, "h1": rng.last_hour}


def path_refs(conn: sqlite3.Connection, site_id: int, path_id: int, rng: Range, limit: int,
              offset: int) -> dict[str, Any]:
    """The reply of GET /api/v0/stats/hits/{path_id}: most visits first, then by
    referrer id (the order they were first seen)."""
    if rng.empty:
        return {"refs": [], "more": False}
    rows = conn.execute(
        "SELECT r.ref, r.ref_scheme, x.visits FROM (SELECT ref_id, sum(total) AS visits"
        " FROM ref_counts WHERE site_id = :site AND path_id = :path AND hour >= :h0"
        " AND hour <= :h1 GROUP BY ref_id) x JOIN refs r ON r.id = x.ref_id"
        " WHERE x.visits > 0 ORDER BY x.visits DESC, x.ref_id LIMIT :limit OFFSET :offset",
        {"site": site_id, "path": path_id, "limit": limit + 1, "offset": offset,
         **_hour_args(rng)}).fetchall()
    refs = [{"name": r[0], "count": r[2], "ref_scheme": r[1]} for r in rows]
    return {"refs": refs[:limit], "more": len(refs) > limit}


def _top_sources(rng: Range, paths: PathSet, args: dict[str, Any]) -> str:
    """(ref_id, total) rows of the range: per site from `ref_days` for whole days and
    `ref_hours` for the edges; per path from `ref_counts`."""
    if not paths.everything:
        args.update(_hour_args(rng), paths=paths.json())
        return ("SELECT ref_id, total FROM ref_counts WHERE site_id = :site AND " + IN_PATHS
                + " AND hour >= :h0 AND hour <= :h1")
    days, edges = rng.split()
    parts = []
    if days:
        args["d0"], args["d1"] = days
        parts.append("SELECT ref_id, total FROM ref_days WHERE site_id = :site"
                     " AND day >= :d0 AND day <= :d1")
    for i, (a, b, sign) in enumerate(edges):
        args[f"e{i}a"], args[f"e{i}b"] = a, b
        parts.append(f"SELECT ref_id, {'' if sign > 0 else '-'}total FROM ref_hours"
                     f" WHERE site_id = :site AND hour >= :e{i}a AND hour <= :e{i}b")
    return " UNION ALL ".join(parts)


def top_refs(conn: sqlite3.Connection, site: dict[str, Any], rng: Range, paths: PathSet,
             limit: int, offset: int) -> dict[str, Any]:
    """The reply of GET /api/v0/stats/toprefs: most visits first, then by referrer id.
    Referrers on the site's own `link_domain` are left out."""
    if rng.empty or paths.nothing:
        return {"stats": [], "more": False}
    args: dict[str, Any] = {"site": site["id"], "limit": limit + 1, "offset": offset}
    domain = link_domain_prefix(site.get("link_domain") or "")
    own = ""
    if domain:
        own = " AND NOT r.ref LIKE :own ESCAPE '\\'"
        args["own"] = _like_prefix(domain)
    source = _top_sources(rng, paths, args)
    rows = conn.execute(
        f"SELECT r.ref, r.ref_scheme, x.visits FROM (SELECT ref_id, sum(total) AS visits"
        f" FROM ({source}) s GROUP BY ref_id) x JOIN refs r ON r.id = x.ref_id"
        f" WHERE x.visits > 0{own} ORDER BY x.visits DESC, x.ref_id"
        " LIMIT :limit OFFSET :offset", args).fetchall()
    stats = []
    for ref, scheme, visits in rows:
        item: dict[str, Any] = {"id": ref} if ref else {}
        item.update(name=ref, count=visits, ref_scheme=scheme)
        stats.append(item)
    return {"stats": stats[:limit], "more": len(stats) > limit}


def ref_paths(conn: sqlite3.Connection, site_id: int, ref: str, rng: Range, paths: PathSet,
              limit: int, offset: int) -> dict[str, Any]:
    """The reply of GET /api/v0/stats/toprefs/{ref}: the paths that got visits from
    referrers named `ref` (ignoring ASCII case, whatever their scheme), most first."""
    if rng.empty or paths.nothing:
        return {"stats": [], "more": False}
    cond = "" if paths.everything else " AND c." + IN_PATHS
    args: dict[str, Any] = {"site": site_id, "ref": ref, "limit": limit + 1, "offset": offset,
                            **_hour_args(rng)}
    if not paths.everything:
        args["paths"] = paths.json()
    rows = conn.execute(
        "SELECT p.path, x.visits FROM (SELECT c.path_id, sum(c.total) AS visits"
        " FROM ref_counts c WHERE c.site_id = :site AND c.ref_id IN"
        " (SELECT id FROM refs WHERE lower(ref) = lower(:ref))"
        f" AND c.hour >= :h0 AND c.hour <= :h1{cond} GROUP BY c.path_id) x"
        " JOIN paths p ON p.id = x.path_id WHERE x.visits > 0"
        f" ORDER BY x.visits DESC, {db.nocase('p.path')} LIMIT :limit OFFSET :offset",
        args).fetchall()
    stats = [{"name": r[0], "count": r[1]} for r in rows]
    return {"stats": stats[:limit], "more": len(stats) > limit}

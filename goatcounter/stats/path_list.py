"""Paths: the pages and events recorded for a site (GET /api/v0/paths)."""
from __future__ import annotations

import sqlite3
from typing import Any


def to_api(row: sqlite3.Row) -> dict[str, Any]:
    """The Path object of the API (spec 11.4)."""
    return {"id": row["id"], "path": row["path"], "title": row["title"],
            "event": bool(row["event"])}


def list_paths(conn: sqlite3.Connection, site_id: int, after: int,
               limit: int) -> dict[str, Any]:
    """A page of the site's paths with ids above `after`, by id, and whether more
    follow. Ordered by id, so that `after` pages through all of them."""
    rows = conn.execute(
        "SELECT id, path, title, event FROM paths WHERE site_id = :site AND id > :after"
        " ORDER BY id LIMIT :limit",
        {"site": site_id, "after": after, "limit": limit + 1}).fetchall()
    return {"paths": [to_api(r) for r in rows[:limit]], "more": len(rows) > limit}

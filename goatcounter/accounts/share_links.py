"""Share links: named, read-only ways into one site's dashboard without an account.

Each link has its own secret, shown once when it is made (only its hash is kept, found by
a prefix as API tokens are); a link may expire and may be revoked, and remembers when it
was last used. Upstream's single `secret` setting (SiteSettings.public = "secret") keeps
working beside them.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from typing import Any

from goatcounter import clock

PREFIX_LENGTH = 8
# Written at most this often: a link opened by many people must not make every view a write.
TOUCH_SECONDS = 3600
MAX_NAME = 100


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def create(conn: sqlite3.Connection, site_id: int, name: str, user_id: int | None,
           expires_at: str | None = None) -> tuple[str, dict[str, Any]]:
    """A new link (inside the caller's write transaction): its secret, shown only now,
    and its row."""
    secret = secrets.token_urlsafe(24)
    cur = conn.execute(
        "INSERT INTO share_links (site_id, name, secret_prefix, secret_hash, created_by,"
        " created_at, expires_at) VALUES (:site, :name, :prefix, :hash, :user, :now, :exp)"
        " RETURNING id",
        {"site": site_id, "name": name, "prefix": secret[:PREFIX_LENGTH],
         "hash": _hash(secret), "user": user_id, "now": clock.now_text(), "exp": expires_at})
    row = conn.execute("SELECT * FROM share_links WHERE id = :id",
                       {"id": cur.fetchone()[0]}).fetchone()
    return secret, dict(row)


def list_for(conn: sqlite3.Connection, site_id: int) -> list[dict[str, Any]]:
    """The site's links, newest first, with whether each still opens the dashboard."""
    now = clock.now_text()
    rows = conn.execute("SELECT * FROM share_links WHERE site_id = :site ORDER BY id DESC",
                        {"site": site_id}).fetchall()
    return [{**dict(r), "live": _live(dict(r), now)} for r in rows]


def revoke(conn: sqlite3.Connection, site_id: int, link_id: int) -> bool:
    """Revoke one of the site's links (inside a write transaction); False if it has none
    by that id or it was revoked already."""
    cur = conn.execute(
        "UPDATE share_links SET revoked_at = :now WHERE id = :id AND site_id = :site"
        " AND revoked_at IS NULL", {"now": clock.now_text(), "id": link_id, "site": site_id})
    return cur.rowcount > 0


def _live(row: dict[str, Any], now: str) -> bool:
    # Times are kept as whole-second RFC 3339 UTC text, which sorts as time does.
    return row["revoked_at"] is None and (row["expires_at"] is None or row["expires_at"] > now)


def find_live(conn: sqlite3.Connection, site_id: int, secret: str) -> dict[str, Any] | None:
    """The site's live link with this secret, or None: the prefix finds the rows, a
    constant-time comparison of the hash decides."""
    digest = _hash(secret)
    now = clock.now_text()
    found = None
    for row in conn.execute(
            "SELECT * FROM share_links WHERE secret_prefix = :prefix AND site_id = :site",
            {"prefix": secret[:PREFIX_LENGTH], "site": site_id}):
        if hmac.compare_digest(row["secret_hash"], digest) and _live(dict(row), now):
            found = dict(row)
    return found


def needs_touch(link: dict[str, Any]) -> bool:
    """Whether the link's last use is old enough to be written again."""
    last = link["last_used_at"]
    return not last or clock.now() - clock.parse_rfc3339(last).timestamp() >= TOUCH_SECONDS


def touch(conn: sqlite3.Connection, link_id: int) -> None:
    """Record a use of the link (inside a write transaction)."""
    conn.execute("UPDATE share_links SET last_used_at = :now WHERE id = :id",
                 {"now": clock.now_text(), "id": link_id})

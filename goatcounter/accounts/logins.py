"""Signing in to the pages: checking an email and password, and the per-user key that
every session of a user is signed with.

A session names its user and carries `proof(...)`, a MAC over the user's `login_key`.
Signing out or setting a new password clears the key, which ends every session of that
user on every device; the next sign-in makes a new key.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from typing import Any

from goatcounter import clock
from goatcounter.accounts import passwords, sites, users
from goatcounter.storage import db

# The one message for a wrong email and a wrong password alike: telling them apart
# would tell a stranger which addresses have an account.
WRONG_LOGIN = "Wrong email or password."


def check(conn: sqlite3.Connection, site: dict[str, Any], email: str,
          password: str) -> dict[str, Any] | None:
    """The user of the site's account with this email and password, or None. An unknown
    email costs the same work (one password hash) as a wrong password."""
    row = conn.execute(
        "SELECT id, password FROM users WHERE site_id = :account AND "
        + db.nocase("email") + " = " + db.nocase(":email"),
        {"account": sites.account_id(site), "email": email.strip()}).fetchone()
    if not passwords.check_password(row["password"] if row else None, password):
        return None
    return users.get(conn, row["id"])


def start(conn: sqlite3.Connection, user_id: int) -> str:
    """Record a sign-in (inside the caller's write transaction) and return the user's
    login key, made now if the user has none: other sessions of the user stay valid."""
    key = secrets.token_urlsafe(32)
    conn.execute(
        "UPDATE users SET login_key = coalesce(login_key, :key), login_at = :now"
        " WHERE id = :id", {"key": key, "now": clock.now_text(), "id": user_id})
    row = conn.execute("SELECT login_key FROM users WHERE id = :id", {"id": user_id}).fetchone()
    return str(row["login_key"])


def end_all(conn: sqlite3.Connection, user_id: int) -> None:
    """End every session of the user (inside the caller's write transaction)."""
    conn.execute("UPDATE users SET login_key = NULL WHERE id = :id", {"id": user_id})


def proof(secret: str | bytes, user_id: int, login_key: str) -> str:
    """What a session carries to show it was made with the user's current login key."""
    key = secret.encode() if isinstance(secret, str) else secret
    message = f"signin\0{user_id}\0{login_key}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def session_user(conn: sqlite3.Connection, secret: str | bytes, user_id: Any,
                 given: Any) -> dict[str, Any] | None:
    """The user a session names, if its proof matches the user's current login key."""
    if not isinstance(user_id, int) or not isinstance(given, str):
        return None
    row = conn.execute("SELECT login_key FROM users WHERE id = :id", {"id": user_id}).fetchone()
    if row is None or not row["login_key"]:
        return None
    if not hmac.compare_digest(proof(secret, user_id, row["login_key"]), given):
        return None
    return users.get(conn, user_id)


def opened_today(user: dict[str, Any]) -> bool:
    """Whether `open_at` already records a visit today (it is written at most daily)."""
    opened = user.get("open_at") or ""
    return opened[:10] == clock.now_text()[:10]


def record_open(conn: sqlite3.Connection, user_id: int) -> None:
    """Record that the user opened a page (inside the caller's write transaction)."""
    conn.execute("UPDATE users SET open_at = :now WHERE id = :id",
                 {"now": clock.now_text(), "id": user_id})

"""Users: the owners of API tokens, who sign in to the pages."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from goatcounter import clock
from goatcounter.accounts import passwords, settings_schema

USER_COLUMNS = ("id, site_id, email, email_verified, totp_enabled, access, settings,"
                " login_at, open_at, reset_at, last_report_at, created_at, updated_at")


def create(conn: sqlite3.Connection, *, site_id: int, email: str,
           password: str | None = None, access: str = "a") -> dict[str, Any]:
    """Insert a user of an account (inside the caller's transaction) and return it."""
    now = clock.now_text()
    cur = conn.execute(
        "INSERT INTO users (site_id, email, password, access, settings, last_report_at,"
        " created_at) VALUES (:site, :email, :pw, :access, :settings, :now, :now)",
        {"site": site_id, "email": email.strip(),
         "pw": passwords.hash_password(password) if password else None,
         "access": json.dumps({"all": access}),
         "settings": json.dumps(settings_schema.default_user_settings()),
         "now": now})
    user = get(conn, int(cur.lastrowid or 0))
    assert user is not None
    return user


def get(conn: sqlite3.Connection, user_id: int) -> dict[str, Any] | None:
    """The user with this id, with JSON columns decoded, or None."""
    row = conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = :id",
                       {"id": user_id}).fetchone()
    if row is None:
        return None
    user = dict(row)
    user["access"] = json.loads(user["access"])
    user["settings"] = json.loads(user["settings"])
    return user


# Access levels, each including the ones after it: superuser, admin, settings, read-only.
ACCESS_LEVELS = ("*", "a", "s", "r")


def has_access(user: dict[str, Any], level: str) -> bool:
    """Whether the user's access is `level` or more (`*` ⊇ `a` ⊇ `s` ⊇ `r`)."""
    have = user["access"].get("all")
    if have not in ACCESS_LEVELS:
        return False
    return ACCESS_LEVELS.index(have) <= ACCESS_LEVELS.index(level)


def is_admin(user: dict[str, Any]) -> bool:
    """Admins (access `a`) and superusers (`*`) may use API tokens."""
    return has_access(user, "a")


def set_password(conn: sqlite3.Connection, user_id: int, hashed: str) -> bool:
    """Store a new password, as made by passwords.hash_password outside the transaction
    (it takes a while), and end every session of the user. False when there is no such
    user."""
    return conn.execute(
        "UPDATE users SET password = :pw, login_key = NULL, updated_at = :now WHERE id = :id",
        {"pw": hashed, "now": clock.now_text(), "id": user_id}).rowcount > 0


def set_email(conn: sqlite3.Connection, user_id: int, email: str) -> bool:
    """Change a user's email (inside the caller's transaction); raises IntegrityError when
    another user of the account has it. False when there is no such user."""
    return conn.execute(
        "UPDATE users SET email = :email, updated_at = :now WHERE id = :id",
        {"email": email.strip(), "now": clock.now_text(), "id": user_id}).rowcount > 0


def to_api(user: dict[str, Any]) -> dict[str, Any]:
    """The User object of the API (spec 11.4)."""
    return {
        "id": user["id"],
        "site": user["site_id"],
        "email": user["email"],
        "email_verified": bool(user["email_verified"]),
        "totp_enabled": bool(user["totp_enabled"]),
        "access": user["access"],
        "login_at": user["login_at"],
        "open_at": user["open_at"],
        "reset_at": user["reset_at"],
        "settings": user["settings"],
        "last_report_at": user["last_report_at"],
        "created_at": user["created_at"],
        "updated_at": user["updated_at"],
    }

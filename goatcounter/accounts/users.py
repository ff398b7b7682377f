"""Users: the owners of API tokens."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from werkzeug.security import generate_password_hash

from goatcounter import clock
from goatcounter.accounts import settings_schema

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
         "pw": generate_password_hash(password) if password else None,
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


def is_admin(user: dict[str, Any]) -> bool:
    """Admins (access `a`) and superusers (`*`) may use API tokens."""
    return user["access"].get("all") in ("a", "*")


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

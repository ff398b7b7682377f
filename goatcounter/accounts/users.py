"""Users: the owners of API tokens, who sign in to the pages."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from goatcounter import clock
from goatcounter.accounts import passwords, settings_schema
from goatcounter.errors import BadRequest

USER_COLUMNS = ("id, site_id, email, email_verified, totp_enabled, access, settings,"
                " login_at, open_at, reset_at, last_report_at, created_at, updated_at")


def create(conn: sqlite3.Connection, *, site_id: int, email: str,
           password: str | None = None, access: str = "a") -> dict[str, Any]:
    """Insert a user of an account (inside the caller's transaction) and return it."""
    now = clock.now_text()
    cur = conn.execute(
        "INSERT INTO users (site_id, email, password, access, settings, last_report_at,"
        " created_at) VALUES (:site, :email, :pw, :access, :settings, :now, :now) RETURNING id",
        {"site": site_id, "email": email.strip(),
         "pw": passwords.hash_password(password) if password else None,
         "access": json.dumps({"all": access}),
         "settings": json.dumps(settings_schema.default_user_settings()),
         "now": now})
    user = get(conn, int(cur.fetchone()[0]))
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


# Managing the users of an account (the settings pages) --------------------------------

ACCESS_LABELS = {
    "r": "Read only",
    "s": "Settings: everything but users, sites and API keys",
    "a": "Admin: full access",
    "*": "Superuser: full access, and the server's settings",
}
LAST_ADMIN = "an account needs at least one admin; make another user an admin first"


def list_account(conn: sqlite3.Connection, account_id: int) -> list[dict[str, Any]]:
    """The users of an account, by email."""
    rows = conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE site_id = :s"
                        " ORDER BY email COLLATE NOCASE, id", {"s": account_id}).fetchall()
    out = []
    for row in rows:
        user = dict(row)
        user["access"] = json.loads(user["access"])
        user["settings"] = json.loads(user["settings"])
        out.append(user)
    return out


def _other_admins(conn: sqlite3.Connection, user: dict[str, Any]) -> int:
    rows = conn.execute("SELECT access FROM users WHERE site_id = :s AND id != :id",
                        {"s": user["site_id"], "id": user["id"]}).fetchall()
    return sum(json.loads(r["access"]).get("all") in ("a", "*") for r in rows)


def set_access(conn: sqlite3.Connection, user: dict[str, Any], level: str) -> None:
    """Change a user's access level (inside the caller's write transaction). The last
    admin of an account can't be made less than an admin: nobody could manage it."""
    if level not in ACCESS_LEVELS:
        raise BadRequest(f"unknown access level {level!r}")
    if is_admin(user) and level not in ("a", "*") and not _other_admins(conn, user):
        raise BadRequest(LAST_ADMIN)
    conn.execute("UPDATE users SET access = :a, updated_at = :now WHERE id = :id",
                 {"a": json.dumps({"all": level}), "now": clock.now_text(), "id": user["id"]})


def delete(conn: sqlite3.Connection, user: dict[str, Any]) -> None:
    """Remove a user and the user's API tokens (inside the caller's write transaction);
    not the last admin of the account."""
    if is_admin(user) and not _other_admins(conn, user):
        raise BadRequest(LAST_ADMIN)
    conn.execute("DELETE FROM api_tokens WHERE user_id = :id", {"id": user["id"]})
    conn.execute("DELETE FROM users WHERE id = :id", {"id": user["id"]})


def update_settings(conn: sqlite3.Connection, user_id: int,
                    changes: dict[str, Any]) -> dict[str, Any]:
    """Apply decoded UserSettings fields (settings_schema.decode_user_defaults) to a
    user's settings, checked as the Sites API checks `user_defaults`; returns the new
    settings. Raises ValidationError and stores nothing when a field is wrong."""
    user = get(conn, user_id)
    if user is None:
        raise BadRequest("no such user")
    settings = settings_schema.build_user_defaults({**user["settings"], **changes})
    errors = settings_schema.user_defaults_errors(settings)
    errors.check()
    conn.execute("UPDATE users SET settings = :s, updated_at = :now WHERE id = :id",
                 {"s": json.dumps(settings), "now": clock.now_text(), "id": user_id})
    return settings

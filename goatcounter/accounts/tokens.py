"""API tokens: creation, storage as hashes, authentication and permission checks."""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import sqlite3
from typing import Any

from flask import current_app, g, request

from goatcounter import clock, encoding
from goatcounter.accounts import sites, users
from goatcounter.errors import APIError, Forbidden, Unauthorized
from goatcounter.storage import db
from goatcounter.validation import MSG_REQUIRED, FieldErrors

# Permission bits; upstream marks these values as never to change.
PERM_NOTHING = 1
PERM_COUNT = 2
PERM_EXPORT = 4
PERM_SITE_READ = 8
PERM_SITE_CREATE = 16
PERM_SITE_UPDATE = 32
PERM_STATS = 64

# In the order upstream lists them in 403 messages.
PERM_NAMES = (
    (PERM_COUNT, "count"),
    (PERM_EXPORT, "export"),
    (PERM_SITE_READ, "site-read"),
    (PERM_SITE_CREATE, "site-create"),
    (PERM_SITE_UPDATE, "site-update"),
    (PERM_STATS, "stats"),
)
PERM_ALL = sum(bit for bit, _ in PERM_NAMES)
# Characters at the start of a token that the database finds it by (8 of about 50).
PREFIX_LENGTH = 8
# A token's last use is written at most this often (spec 2).
TOUCH_SECONDS = 24 * 3600


@dataclasses.dataclass(frozen=True)
class Auth:
    """Who is calling: the site of the request, the token and the token's user."""

    site: dict[str, Any]
    user: dict[str, Any]
    token: dict[str, Any]


def new_token() -> str:
    """A random 256-bit token written in base36 (about 50 characters), as upstream."""
    return encoding.random_base36(256)


def hash_token(token: str) -> str:
    """What is stored to check a token with: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_prefix(token: str) -> str:
    """What is stored to find a token by: its first characters, which are not secret
    (the remaining ~215 bits are); shorter tokens are their own prefix."""
    return token[:PREFIX_LENGTH]


def perm_names(bits: int) -> list[str]:
    """Names of the permission bits set in `bits`, in upstream's order."""
    return [name for bit, name in PERM_NAMES if bits & bit]


def parse_perms(text: str) -> int:
    """A comma list of permission names (`site_read` or `site-read`) as a bitmask."""
    by_name = {name: bit for bit, name in PERM_NAMES}
    by_name["all"] = PERM_ALL
    bits = 0
    for part in text.split(","):
        name = part.strip().lower().replace("_", "-")
        if not name:
            continue
        if name not in by_name:
            raise ValueError(f"unknown permission {part.strip()!r}; known: "
                             + ", ".join(n for _, n in PERM_NAMES) + ", all")
        bits |= by_name[name]
    if not bits:
        raise ValueError("no permission given")
    return bits


def create_token(conn: sqlite3.Connection, *, user: dict[str, Any], name: str,
                 permissions: int, site_ids: list[int] | None = None,
                 token: str | None = None) -> tuple[str, dict[str, Any]]:
    """Store a new token for `user` (inside the caller's transaction). Returns the token,
    which is never stored and can't be shown again, and its row."""
    if permissions <= PERM_NOTHING or permissions & ~(PERM_ALL | PERM_NOTHING):
        raise ValueError(f"invalid permissions: {permissions}")
    token = token or new_token()
    cur = conn.execute(
        "INSERT INTO api_tokens (site_id, user_id, name, token_prefix, token_hash, permissions,"
        " sites, created_at) VALUES (:site, :user, :name, :prefix, :hash, :perm, :sites, :now)"
        " RETURNING id",
        {"site": user["site_id"], "user": user["id"], "name": name,
         "prefix": token_prefix(token), "hash": hash_token(token),
         "perm": permissions & ~PERM_NOTHING, "sites": json.dumps(site_ids or [-1]),
         "now": clock.now_text()})
    new_id = cur.fetchone()[0]
    row = conn.execute("SELECT * FROM api_tokens WHERE id = :id", {"id": new_id}).fetchone()
    return token, dict(row)


def token_to_api(token: dict[str, Any]) -> dict[str, Any]:
    """The APIToken object shown by /api/v0/me."""
    return {"name": token["name"], "permissions": token["permissions"],
            "sites": json.loads(token["sites"])}


def _token_from_header(header: str) -> str:
    parts = header.split()
    if len(parts) != 2:
        raise Unauthorized("wrong format for Authorization header")
    kind, value = parts
    if kind == "Bearer":
        return value
    if kind == "Basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError) as exc:
            raise Unauthorized("wrong format for Authorization header") from exc
        return decoded.partition(":")[2]
    raise Unauthorized("wrong format for Authorization header")


def current_site() -> dict[str, Any]:
    """The site of the current request, from the Host header (kept on `g`). Read fresh:
    API replies show the site's own fields (received_data, first_hit_at), which must not
    lag behind; only the pixel endpoint uses the per-process cache."""
    if "site" not in g:
        g.site = sites.by_host(db.get_db(), request.host)
    return g.site


def forget_sites() -> None:
    """Drop this process's cached sites (after a site changed)."""
    current_app.extensions.setdefault("goatcounter_hosts", sites.HostCache()).clear()


def lookup() -> dict[str, Any]:
    """The token row of the request's Authorization header for the current site, found
    once per request (the rate limiter asks before the view does). Raises Unauthorized
    (or the site lookup's error), the same each time it is asked."""
    if "token_lookup" not in g:
        try:
            header = request.headers.get("Authorization", "")
            if not header.strip():
                raise Unauthorized("no Authorization header")
            token = _token_from_header(header)
            row = _find(db.get_db(), sites.account_id(current_site()), token)
            if row is None:
                raise Unauthorized("unknown token")
            g.token_lookup = (dict(row), token)
        except APIError as exc:
            g.token_lookup = exc
    if isinstance(g.token_lookup, APIError):
        raise g.token_lookup
    return g.token_lookup[0]


def authenticate(required: int = 0) -> Auth:
    """Check the request's token for the current site and `required` permission bits,
    in upstream's order of checks and with its messages."""
    tok = lookup()
    site = current_site()
    conn = db.get_db()
    allowed = json.loads(tok["sites"])
    if -1 not in allowed and site["id"] not in allowed:
        raise Forbidden("this token does not have access to this site")
    user = users.get(conn, tok["user_id"])
    if user is None or not users.is_admin(user):
        raise Unauthorized("only admins can create and use API keys")
    if required and not tok["permissions"] & required:
        names = ", ".join(f"'{n}'" for n in perm_names(required))
        raise Forbidden(f"requires {names} permissions")
    _touch(conn, tok, g.token_lookup[1])
    g.auth = Auth(site=site, user=user, token=tok)
    return g.auth


def _find(conn: sqlite3.Connection, account: int, token: str) -> sqlite3.Row | None:
    """The account's token row for `token`, or None. The index finds rows by the
    token's prefix; only the hash of the whole token, compared in constant time, decides
    which (if any) is the one."""
    digest = hash_token(token)
    found = None
    for row in conn.execute(
            "SELECT * FROM api_tokens WHERE site_id = :account AND token_prefix = :prefix",
            {"account": account, "prefix": token_prefix(token)}):
        if hmac.compare_digest(row["token_hash"], digest):
            found = row
    if found is None:
        # A token issued before prefixes were stored: found by its hash (a guess's hash
        # tells nothing about real tokens), and given its prefix on this use (_touch).
        found = conn.execute(
            "SELECT * FROM api_tokens WHERE site_id = :account AND token_prefix IS NULL"
            " AND token_hash = :hash", {"account": account, "hash": digest}).fetchone()
    return found


def _touch(conn: sqlite3.Connection, tok: dict[str, Any], token: str) -> None:
    """Record that a token was used, at most once every 24 hours (a write on every
    request would put the API's reads behind the writers); a token without its prefix
    gets it here."""
    now = int(clock.now())
    last = tok["last_used_at"]
    if (tok["token_prefix"] is not None and last
            and now - clock.parse_rfc3339(last).timestamp() < TOUCH_SECONDS):
        return
    db.write(lambda c: c.execute(
        "UPDATE api_tokens SET last_used_at = :now, token_prefix = :prefix WHERE id = :id",
        {"now": clock.rfc3339(now), "prefix": token_prefix(token), "id": tok["id"]}), conn)


# Managing tokens (the command line and the API page share these) -----------------------

def list_tokens(conn: sqlite3.Connection, user_id: int | None = None) -> list[dict[str, Any]]:
    """Tokens without their secrets (none is stored): every one, or a user's."""
    rows = conn.execute(
        "SELECT id, site_id, user_id, name, permissions, sites, created_at, last_used_at"
        " FROM api_tokens WHERE :user IS NULL OR user_id = :user ORDER BY id",
        {"user": user_id}).fetchall()
    return [{**dict(r), "site_ids": json.loads(r["sites"])} for r in rows]


def delete_token(conn: sqlite3.Connection, token_id: int, user_id: int | None = None) -> bool:
    """Revoke a token (only one of `user_id`'s when given); False when there is none."""
    return conn.execute(
        "DELETE FROM api_tokens WHERE id = :id AND (:user IS NULL OR user_id = :user)",
        {"id": token_id, "user": user_id}).rowcount > 0


def token_errors(conn: sqlite3.Connection, user: dict[str, Any], name: str, permissions: int,
                 site_ids: list[int]) -> FieldErrors:
    """What is wrong with a token to be made: a name, at least one permission, and sites
    of the user's account (-1: every site, also those made later)."""
    errors = FieldErrors()
    if not name.strip():
        errors.add("name", MSG_REQUIRED)
    if not permissions & PERM_ALL or permissions & ~(PERM_ALL | PERM_NOTHING):
        errors.add("permissions", "must select at least one")
    if not site_ids:
        errors.add("sites", "must select at least one")
    account = {r["id"] for r in conn.execute(
        "SELECT id FROM sites WHERE (id = :a OR parent = :a) AND state = 'a'",
        {"a": user["site_id"]})}
    if any(s != -1 and s not in account for s in site_ids):
        errors.add("sites", "must be sites of this account")
    return errors

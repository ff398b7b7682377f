"""Sites: storage, lookup by Host header, the Sites API's rules (creation and updates of
child sites), and the Sites API's rules. Settings objects are in settings_schema.py."""
from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from goatcounter import clock, decoding, encoding
from goatcounter.accounts import settings_schema
from goatcounter.accounts.settings_schema import (
    build_user_defaults,
    decode_settings,
    decode_user_defaults,
    merge_settings,
    settings_errors,
    user_defaults_errors,
)
from goatcounter.errors import BadRequest, NotFound
from goatcounter.storage import db
from goatcounter.validation import (
    MSG_EXISTS,
    MSG_REQUIRED,
    MSG_URL,
    FieldErrors,
    clean_json,
    domain_error,
    length_error,
    nullable,
    valid_url,
)

SITE_COLUMNS = ("id, parent, cname, cname_setup_at, code, link_domain, settings, user_defaults,"
                " received_data, state, created_at, updated_at, first_hit_at")


def random_code() -> str:
    """A site code as upstream makes them in self-hosted mode: serve-<base36>."""
    return "serve-" + encoding.random_base36(64)


def decode(row: sqlite3.Row) -> dict[str, Any]:
    """A site row with its JSON columns decoded."""
    site = dict(row)
    site["settings"] = json.loads(site["settings"])
    site["user_defaults"] = json.loads(site["user_defaults"])
    return site


def to_api(site: dict[str, Any]) -> dict[str, Any]:
    """The Site object of the API (spec 11.2), keys in upstream's order and spelling."""
    return {
        "id": site["id"],
        "parent": site["parent"],
        "cname": site["cname"],
        "cname_setup_at": site["cname_setup_at"],
        "code": site["code"],
        "link_domain": site["link_domain"],
        "setttings": site["settings"],
        "user_defaults": site["user_defaults"],
        "received_data": bool(site["received_data"]),
        "state": site["state"],
        "created_at": site["created_at"],
        "updated_at": site["updated_at"],
        "first_hit_at": site["first_hit_at"],
    }


def get(conn: sqlite3.Connection, site_id: int) -> dict[str, Any] | None:
    """The site with this id, or None."""
    row = conn.execute(f"SELECT {SITE_COLUMNS} FROM sites WHERE id = :id",
                       {"id": site_id}).fetchone()
    return decode(row) if row else None


def strip_port(host: str) -> str:
    """The host name of a Host header value, without its port."""
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def normal_cname(name: str) -> str:
    """A host name without the trailing dot of a fully qualified name: `b.test.` and
    `b.test` are the same host, and are stored and looked up as `b.test`."""
    return name[:-1] if name.endswith(".") else name


def by_host(conn: sqlite3.Connection, host: str) -> dict[str, Any]:
    """The site a request is for, from its Host header: the site whose cname matches
    (with or without the port, and without a trailing dot), or the only site when there
    is just one."""
    bare = strip_port(host)
    port = host[len(bare):]
    bare = normal_cname(bare)
    # Host names are case-insensitive; NOCASE is also how the unique index compares.
    rows = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites"
        " WHERE state = 'a' AND " + db.nocase("cname") + " IN (" + db.nocase(":host") + ", "
        + db.nocase(":bare") + ")",
        {"host": bare + port, "bare": bare}).fetchall()
    if rows:
        return decode(rows[0])
    rows = conn.execute(f"SELECT {SITE_COLUMNS} FROM sites WHERE state = 'a' LIMIT 2").fetchall()
    if len(rows) == 1:
        return decode(rows[0])
    raise BadRequest(f'no site at this domain ("{host}")')


def ignored_ips(settings: dict[str, Any]) -> frozenset[str]:
    """The addresses of a site's `ignore_ips` setting."""
    return _split_ips(str(settings.get("ignore_ips", "")))


@functools.lru_cache(maxsize=256)
def _split_ips(text: str) -> frozenset[str]:
    return frozenset(ip.strip() for ip in text.split(",") if ip.strip())


class HostCache:
    """Sites by Host header, kept a second per process: the pixel endpoint looks its site
    up on every pageview. A change made by this process clears it at once; other
    workers see a change within TTL seconds. Callers must not modify what they get."""

    TTL = 1.0

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, conn: sqlite3.Connection, host: str) -> dict[str, Any]:
        now = time.monotonic()
        entry = self._entries.get(host)
        if entry is not None and entry[0] > now:
            return entry[1]
        site = by_host(conn, host)
        if len(self._entries) > 1000:
            self._entries.clear()
        self._entries[host] = (now + self.TTL, site)
        return site

    def clear(self) -> None:
        self._entries.clear()


def create(conn: sqlite3.Connection, *, cname: str | None, parent: int | None = None,
           code: str | None = None, link_domain: str = "",
           settings: dict[str, Any] | None = None,
           user_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Insert a site (inside the caller's write transaction) and return it."""
    now = clock.now_text()
    cname = normal_cname(cname) if cname else cname
    full = settings_schema.default_site_settings()
    full.update(settings or {})
    cur = conn.execute(
        "INSERT INTO sites (parent, code, cname, cname_setup_at, link_domain, settings,"
        " user_defaults, created_at, first_hit_at)"
        " VALUES (:parent, :code, :cname, :setup, :link, :settings, :ud, :now, :now)"
        " RETURNING id",
        {"parent": parent, "code": code or random_code(), "cname": cname,
         "setup": now if cname else None, "link": link_domain,
         "settings": json.dumps(full),
         "ud": json.dumps(user_defaults or settings_schema.default_user_settings()), "now": now})
    site = get(conn, int(cur.fetchone()[0]))
    assert site is not None
    return site


def account_id(site: dict[str, Any]) -> int:
    """The account a site belongs to: its parent, or itself."""
    return site["parent"] or site["id"]


def cname_errors(errors: FieldErrors, cname: str) -> None:
    """Length and domain checks of a cname that was given."""
    problem = length_error(cname, 4, 255)
    if problem:
        errors.add("cname", problem)
    if cname:
        # The one trailing dot a host name may have is gone already (normal_cname).
        reason = domain_error(cname) or ("empty label" if cname.endswith(".") else None)
        if reason:
            errors.add("cname", f"must be a valid domain: {reason}")


# The Sites API (spec 10.14) -----------------------------------------------------------

# Site fields a client can't set: dropped without an error, so that a Site object read
# from the API can be sent back as it is.
READ_ONLY = ("id", "parent", "cname_setup_at", "received_data", "state", "created_at",
             "updated_at", "first_hit_at")


def j_optional_str(value: Any, field: str) -> str | None:
    return None if value is None else decoding.j_str(value, field)


def _settings_key(got: dict[str, Any]) -> None:
    """Upstream's Site object spells it `setttings` (sic); `settings` is accepted too
    (DECISIONS: setttings). Both at once is ambiguous."""
    if "setttings" in got and "settings" in got:
        raise BadRequest('invalid JSON: send either "settings" or "setttings", not both')
    if "setttings" in got:
        got["settings"] = got.pop("setttings")


CREATE_FIELDS: dict[str, decoding.Converter] = {
    "cname": j_optional_str,
    # Ignored in self-hosted mode (replaced by serve-<random>), but it must be a string.
    "code": decoding.j_str,
    "link_domain": decoding.j_str,
    "setttings": decode_settings,
    "settings": decode_settings,
    "user_defaults": decode_user_defaults,
    **{name: decoding.j_any for name in READ_ONLY},
}

UPDATE_FIELDS: dict[str, decoding.Converter] = {
    "settings": decode_settings,
    "setttings": decode_settings,
    "cname": j_optional_str,
    "link_domain": nullable(decoding.j_str),
}


def decode_create(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a PUT /api/v0/sites body (a Site object) that can be set."""
    got = decoding.match_keys(clean_json(body), CREATE_FIELDS)
    _settings_key(got)
    return {k: v for k, v in got.items() if k not in READ_ONLY and k != "code"}


def decode_update(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a POST/PATCH /api/v0/sites/{id} body that were sent. A null cname
    is kept (it clears the cname); a null link_domain counts as not sent, as in Go."""
    got = decoding.match_keys(clean_json(body), UPDATE_FIELDS)
    _settings_key(got)
    if got.get("link_domain", "") is None:
        del got["link_domain"]
    return got


def visible(conn: sqlite3.Connection, current: dict[str, Any],
            site_id: int) -> dict[str, Any] | None:
    """The active site `site_id` if the current site may see it: itself or one of its
    direct children, as upstream (a child can't see its parent or siblings)."""
    row = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites WHERE id = :id AND state = 'a'"
        " AND (id = :current OR parent = :current)",
        {"id": site_id, "current": current["id"]}).fetchone()
    return decode(row) if row else None


def list_visible(conn: sqlite3.Connection, current: dict[str, Any]) -> list[dict[str, Any]]:
    """The current site, then its active children ordered by code."""
    rows = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites WHERE parent = :current AND state = 'a'"
        " ORDER BY code", {"current": current["id"]}).fetchall()
    return [current, *(decode(r) for r in rows)]


def _cname_taken(conn: sqlite3.Connection, cname: str, site_id: int | None) -> bool:
    # Same comparison as the unique index (ASCII case folded), over every state, since
    # the index covers deleted sites too.
    return conn.execute(
        f"SELECT 1 FROM sites WHERE {db.nocase('cname')} = {db.nocase(':cname')}"
        " AND id IS DISTINCT FROM :id LIMIT 1",
        {"cname": cname, "id": site_id}).fetchone() is not None


def _unique(fn: Callable[[], Any]) -> Any:
    """Run a write; a uniqueness failure (a race the checks didn't see) is a 400 with
    upstream's message."""
    try:
        return fn()
    except db.integrity_errors() as exc:
        if not db.is_unique_violation(exc):
            raise
        raise BadRequest("this site already exists: code or domain must be unique") from exc


def create_child(conn: sqlite3.Connection, current: dict[str, Any],
                 fields: dict[str, Any]) -> dict[str, Any]:
    """Create a site under the current site's account (inside the caller's write
    transaction) with self-hosted rules: a random serve-<code>, a required cname, and
    cname_setup_at set to now."""
    cname = fields.get("cname")
    if cname is not None:
        cname = normal_cname(cname)
    link_domain = fields.get("link_domain", "").rstrip("/")
    settings = merge_settings(settings_schema.default_site_settings(), fields.get("settings", {}))
    user_defaults = build_user_defaults(fields.get("user_defaults", {}))

    errors = FieldErrors()
    if not cname:
        errors.add("cname", MSG_REQUIRED)
    if link_domain and not valid_url(link_domain):
        errors.add("link_domain", MSG_URL)
    errors.sub("settings", settings_errors(settings))
    errors.sub("user_defaults", user_defaults_errors(user_defaults))
    if cname is not None:
        cname_errors(errors, cname)
    if not errors and _cname_taken(conn, str(cname), None):
        errors.add("cname", MSG_EXISTS)
    errors.check()
    return _unique(lambda: create(conn, cname=cname, parent=account_id(current),
                                  link_domain=link_domain, settings=settings,
                                  user_defaults=user_defaults))


def update(conn: sqlite3.Connection, current: dict[str, Any], site_id: int,
           changes: dict[str, Any], *, replace: bool,
           or_collect: bool | None = None) -> dict[str, Any]:
    """Update settings, cname and link_domain of a site the current site can see (inside
    the caller's write transaction) and return it.

    `replace` (POST) resets what was not sent: cname to null, link_domain to empty,
    settings to the defaults. Otherwise (PATCH) only what was sent changes, settings
    field by field. An empty cname is stored as null. `or_collect` (by default: when not
    `replace`) adds the sent collect bits to the current ones; the settings page sends
    every bit and sets them as sent."""
    # Read again inside the write transaction, so that concurrent PATCHes don't undo
    # each other's fields.
    site = visible(conn, current, site_id)
    if site is None:
        raise NotFound()
    if replace:
        base, cname, link_domain = settings_schema.default_site_settings(), None, ""
    else:
        base, cname, link_domain = site["settings"], site["cname"], site["link_domain"]
    if or_collect is None:
        or_collect = not replace
    settings = merge_settings(base, changes.get("settings", {}), or_collect=or_collect)
    cname = normal_cname(changes["cname"]) if changes.get("cname") else \
        (cname if "cname" not in changes else None)
    link_domain = changes.get("link_domain", link_domain).rstrip("/")

    errors = FieldErrors()
    if link_domain and not valid_url(link_domain):
        errors.add("link_domain", MSG_URL)
    errors.sub("settings", settings_errors(settings))
    if cname is not None:
        cname_errors(errors, cname)
    if not errors and cname is not None and _cname_taken(conn, cname, site_id):
        errors.add("cname", MSG_EXISTS)
    errors.check()

    now = clock.now_text()
    # Self-hosted upstream marks the cname as set up again on every save.
    _unique(lambda: conn.execute(
        "UPDATE sites SET settings = :settings, cname = :cname, cname_setup_at = :setup,"
        " link_domain = :link, updated_at = :now WHERE id = :id",
        {"settings": json.dumps(settings), "cname": cname,
         "setup": now if cname else None, "link": link_domain, "now": now, "id": site_id}))
    updated = get(conn, site_id)
    assert updated is not None
    return updated


# Managing the sites of an account (the settings pages) --------------------------------

def account_sites(conn: sqlite3.Connection, site: dict[str, Any]) -> list[dict[str, Any]]:
    """Every active site of the site's account: the parent first, then its children."""
    account = account_id(site)
    rows = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites WHERE (id = :a OR parent = :a) AND state = 'a'"
        " ORDER BY parent IS NOT NULL, coalesce(cname, code)", {"a": account}).fetchall()
    return [decode(r) for r in rows]


def of_account(conn: sqlite3.Connection, site: dict[str, Any],
               site_id: int) -> dict[str, Any] | None:
    """An active site of the same account as `site`, or None."""
    return next((s for s in account_sites(conn, site) if s["id"] == site_id), None)


def add_child(conn: sqlite3.Connection, current: dict[str, Any],
              cname: str) -> tuple[dict[str, Any], bool]:
    """Add a site to the current site's account (inside the caller's write transaction),
    with the current site's settings, as upstream. A site of the account removed before
    under the same domain comes back with its data. Returns (site, restored)."""
    row = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites WHERE cname = {db.nocase(':cname')}"
        " AND state = 'd' AND (id = :a OR parent = :a)",
        {"cname": cname.strip(), "a": account_id(current)}).fetchone()
    if row is not None:
        conn.execute("UPDATE sites SET state = 'a', updated_at = :now WHERE id = :id",
                     {"now": clock.now_text(), "id": row["id"]})
        restored = get(conn, row["id"])
        assert restored is not None
        return restored, True
    fields = {"cname": cname.strip(), "link_domain": "",
              "settings": {k: v for k, v in current["settings"].items()
                           if k in settings_schema.SETTINGS_FIELDS},
              "user_defaults": current["user_defaults"]}
    for key in settings_schema.LIST_SETTINGS:
        if isinstance(fields["settings"].get(key), str):
            fields["settings"][key] = settings_schema.j_string_list(fields["settings"][key], key)
    return create_child(conn, current, fields), False


def remove(conn: sqlite3.Connection, site: dict[str, Any]) -> None:
    """Mark a child site removed (inside the caller's write transaction): it stops
    counting and is gone from every list; adding its domain again brings it back. An
    account's first site can't go: its users and tokens belong to it."""
    if site["parent"] is None:
        raise BadRequest("the account's first site can't be removed; remove its other "
                         "sites, or the whole instance")
    conn.execute("UPDATE sites SET state = 'd', updated_at = :now WHERE id = :id",
                 {"now": clock.now_text(), "id": site["id"]})


def copy_settings(conn: sqlite3.Connection, source: dict[str, Any],
                  targets: list[dict[str, Any]]) -> None:
    """Give other sites of the account the source's settings (all of them, retention and
    collection included, as upstream), not its domain."""
    now = clock.now_text()
    conn.executemany(
        "UPDATE sites SET settings = ?, user_defaults = ?, updated_at = ? WHERE id = ?",
        [(json.dumps(source["settings"]), json.dumps(source["user_defaults"]), now, t["id"])
         for t in targets if t["id"] != source["id"]])


def set_user_defaults(conn: sqlite3.Connection, site: dict[str, Any],
                      changes: dict[str, Any]) -> dict[str, Any]:
    """Apply decoded UserSettings fields to the site's user_defaults (for new users and
    the public view), checked as the Sites API checks them (inside the caller's write
    transaction)."""
    row = get(conn, site["id"])
    assert row is not None
    defaults = build_user_defaults({**row["user_defaults"], **changes})
    errors = FieldErrors()
    errors.sub("user_defaults", user_defaults_errors(defaults))
    errors.check()
    conn.execute("UPDATE sites SET user_defaults = :ud, updated_at = :now WHERE id = :id",
                 {"ud": json.dumps(defaults), "now": clock.now_text(), "id": site["id"]})
    return defaults

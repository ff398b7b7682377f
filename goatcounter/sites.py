"""Sites: storage, lookup by Host header, and the `db create site` command."""
from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

import click
from flask.cli import with_appcontext

from . import clock, db, defaults
from .errors import BadRequest

SITE_COLUMNS = ("id, parent, cname, cname_setup_at, code, link_domain, settings, user_defaults,"
                " received_data, state, created_at, updated_at, first_hit_at")


def now_text() -> str:
    """Now as whole-second RFC 3339, the precision site and user times are kept in."""
    return clock.rfc3339(int(clock.now()))  # type: ignore[return-value]


def random_code() -> str:
    """A site code as upstream makes them in self-hosted mode: serve-<base36>."""
    num = secrets.randbits(64)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while num:
        num, rem = divmod(num, 36)
        out = digits[rem] + out
    return "serve-" + out


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


def by_host(conn: sqlite3.Connection, host: str) -> dict[str, Any]:
    """The site a request is for, from its Host header: the site whose cname matches
    (with or without the port), or the only site when there is just one."""
    bare = strip_port(host)
    rows = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites WHERE state = 'a' AND cname IN (:host, :bare)",
        {"host": host, "bare": bare}).fetchall()
    if rows:
        return decode(rows[0])
    rows = conn.execute(f"SELECT {SITE_COLUMNS} FROM sites WHERE state = 'a' LIMIT 2").fetchall()
    if len(rows) == 1:
        return decode(rows[0])
    raise BadRequest(f'no site at this domain ("{host}")')


def create(conn: sqlite3.Connection, *, cname: str | None, parent: int | None = None,
           code: str | None = None, link_domain: str = "",
           settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Insert a site (inside the caller's write transaction) and return it."""
    now = now_text()
    full = defaults.site_settings()
    full.update(settings or {})
    cur = conn.execute(
        "INSERT INTO sites (parent, code, cname, cname_setup_at, link_domain, settings,"
        " user_defaults, created_at, first_hit_at)"
        " VALUES (:parent, :code, :cname, :setup, :link, :settings, :ud, :now, :now)",
        {"parent": parent, "code": code or random_code(), "cname": cname,
         "setup": now if cname else None, "link": link_domain,
         "settings": json.dumps(full), "ud": json.dumps(defaults.user_settings()), "now": now})
    site = get(conn, int(cur.lastrowid or 0))
    assert site is not None
    return site


def account_id(site: dict[str, Any]) -> int:
    """The account a site belongs to: its parent, or itself."""
    return site["parent"] or site["id"]


@db.create_cli.command("site")
@click.option("--vhost", required=True, help="Domain the site is reached on (its cname).")
@click.option("--user-email", required=True, help="Email of the site's admin user.")
@click.option("--user-password", default=None, help="Password for the user (optional).")
@click.option("--parent", type=int, default=None, help="Make it a child of this site id.")
@with_appcontext
def create_site_command(vhost: str, user_email: str, user_password: str | None,
                        parent: int | None) -> None:
    """Create a site with an admin user."""
    from . import users

    vhost = vhost.strip().lower()
    if not vhost or " " in vhost or "/" in vhost:
        raise click.BadParameter(f"not a valid host name: {vhost!r}", param_hint="--vhost")
    if "@" not in user_email:
        raise click.BadParameter(f"not an email address: {user_email!r}",
                                 param_hint="--user-email")

    def run(conn: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        if conn.execute("SELECT 1 FROM sites WHERE cname = :c", {"c": vhost}).fetchone():
            raise click.ClickException(f"a site with vhost {vhost} already exists")
        if parent is not None and get(conn, parent) is None:
            raise click.ClickException(f"no site with id {parent}")
        site = create(conn, cname=vhost, parent=parent)
        user = users.create(conn, site_id=account_id(site), email=user_email,
                            password=user_password)
        return site, user

    site, user = db.write(run)
    click.echo(f"created site {site['id']} ({vhost}) with user {user['id']} ({user_email})")


@db.list_cli.command("sites")
@with_appcontext
def list_sites_command() -> None:
    """List all sites."""
    conn = db.get_db()
    for row in conn.execute("SELECT id, parent, code, cname, state FROM sites ORDER BY id"):
        click.echo(f"{row['id']}\t{row['cname'] or ''}\tcode={row['code']}"
                   f"\tparent={row['parent'] or ''}\tstate={row['state']}")

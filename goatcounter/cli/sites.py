"""`goatcounter db create site`, `goatcounter db list sites`."""
from __future__ import annotations

import sqlite3
from typing import Any

import click
from flask.cli import with_appcontext

from goatcounter.accounts import passwords, sites, users
from goatcounter.cli.db import create_cli, list_cli
from goatcounter.storage import db


@create_cli.command("site")
@click.option("--vhost", required=True, help="Domain the site is reached on (its cname).")
@click.option("--user-email", required=True, help="Email of the site's admin user.")
@click.option("--user-password", default=None, help="Password for the user (optional).")
@click.option("--parent", type=int, default=None, help="Make it a child of this site id.")
@with_appcontext
def create_site_command(vhost: str, user_email: str, user_password: str | None,
                        parent: int | None) -> None:
    """Create a site with its first user, a superuser (access `*`, as upstream)."""
    vhost = vhost.strip().lower()
    if not vhost or " " in vhost or "/" in vhost:
        raise click.BadParameter(f"not a valid host name: {vhost!r}", param_hint="--vhost")
    if "@" not in user_email:
        raise click.BadParameter(f"not an email address: {user_email!r}",
                                 param_hint="--user-email")
    if user_password is not None and (problem := passwords.password_error(user_password)):
        raise click.BadParameter(problem, param_hint="--user-password")

    def run(conn: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        if conn.execute("SELECT 1 FROM sites WHERE cname = :c", {"c": vhost}).fetchone():
            raise click.ClickException(f"a site with vhost {vhost} already exists")
        if parent is not None and sites.get(conn, parent) is None:
            raise click.ClickException(f"no site with id {parent}")
        site = sites.create(conn, cname=vhost, parent=parent)
        user = users.create(conn, site_id=sites.account_id(site), email=user_email,
                            password=user_password, access="*")
        return site, user

    site, user = db.write(run)
    click.echo(f"created site {site['id']} ({vhost}) with user {user['id']} ({user_email})")


@list_cli.command("sites")
@with_appcontext
def list_sites_command() -> None:
    """List all sites."""
    conn = db.get_db()
    for row in conn.execute("SELECT id, parent, code, cname, state FROM sites ORDER BY id"):
        click.echo(f"{row['id']}\t{row['cname'] or ''}\tcode={row['code']}"
                   f"\tparent={row['parent'] or ''}\tstate={row['state']}")

"""`goatcounter db update user`: a user's password or email from the command line."""
from __future__ import annotations

import sqlite3

import click
from flask.cli import with_appcontext

from goatcounter.accounts import passwords, users
from goatcounter.cli.db import update_cli
from goatcounter.storage import db


@update_cli.command("user")
@click.option("--id", "user_id", type=int, required=True, help="Id of the user.")
@click.option("--password", default=None,
              help="New password (at least 8 characters); signs the user out everywhere.")
@click.option("--email", default=None, help="New email address.")
@with_appcontext
def update_user_command(user_id: int, password: str | None, email: str | None) -> None:
    """Set a user's password or email address."""
    if password is None and email is None:
        raise click.UsageError("give --password, --email or both")
    if password is not None and (problem := passwords.password_error(password)):
        raise click.BadParameter(problem, param_hint="--password")
    if email is not None:
        email = email.strip()
        if "@" not in email or any(c.isspace() for c in email):
            raise click.BadParameter(f"not an email address: {email!r}", param_hint="--email")

    hashed = passwords.hash_password(password) if password is not None else None

    def run(conn: sqlite3.Connection) -> None:
        if users.get(conn, user_id) is None:
            raise click.ClickException(f"no user with id {user_id}")
        if email is not None:
            try:
                users.set_email(conn, user_id, email)
            except db.integrity_errors() as exc:
                raise click.ClickException(
                    f"another user of this site already has the email {email}") from exc
        if hashed is not None:
            users.set_password(conn, user_id, hashed)

    db.write(run)
    changed = " and ".join(name for name, value in (("password", password), ("email", email))
                           if value is not None)
    click.echo(f"updated the {changed} of user {user_id}")

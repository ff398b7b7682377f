"""`goatcounter db create|list|delete apitoken`: API tokens from the command line."""
from __future__ import annotations

import sqlite3

import click
from flask.cli import with_appcontext

from goatcounter.accounts import users
from goatcounter.accounts.tokens import (
    create_token,
    delete_token,
    list_tokens,
    parse_perms,
    perm_names,
)
from goatcounter.cli.db import create_cli, delete_cli, list_cli
from goatcounter.storage import db


@create_cli.command("apitoken")
@click.option("--user", "user_id", type=int, required=True, help="Id of the token's user.")
@click.option("--perm", "perm", required=True,
              help="Comma list of: count, export, site_read, site_create, site_update, "
                   "stats (or all).")
@click.option("--name", required=True, help="A name to recognise the token by.")
@click.option("--sites", "site_list", default="",
              help="Comma list of site ids the token may use (default: every site of the "
                   "account).")
@with_appcontext
def create_apitoken_command(user_id: int, perm: str, name: str, site_list: str) -> None:
    """Create an API token and print it (it is shown only this once)."""
    try:
        bits = parse_perms(perm)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--perm") from exc
    try:
        site_ids = [int(s) for s in site_list.split(",") if s.strip()] or None
    except ValueError as exc:
        raise click.BadParameter("site ids must be numbers", param_hint="--sites") from exc
    if not name.strip():
        raise click.BadParameter("the name can't be empty", param_hint="--name")

    def run(conn: sqlite3.Connection) -> str:
        user = users.get(conn, user_id)
        if user is None:
            raise click.ClickException(f"no user with id {user_id}")
        token, _ = create_token(conn, user=user, name=name.strip(), permissions=bits,
                                site_ids=site_ids)
        return token

    click.echo(db.write(run))


@list_cli.command("apitokens")
@with_appcontext
def list_apitokens_command() -> None:
    """List API tokens (their secrets are not stored, so they can't be shown)."""
    rows = list_tokens(db.get_db())
    if not rows:
        click.echo("no API tokens")
    for r in rows:
        click.echo(f"{r['id']}\t{r['name']}\tuser={r['user_id']}\tsite={r['site_id']}"
                   f"\tperm={','.join(perm_names(r['permissions']))}\tsites={r['sites']}"
                   f"\tcreated={r['created_at']}\tlast_used={r['last_used_at'] or 'never'}")


@delete_cli.command("apitoken")
@click.argument("token_id", type=int)
@with_appcontext
def delete_apitoken_command(token_id: int) -> None:
    """Delete the API token with id TOKEN_ID."""
    if not db.write(lambda conn: delete_token(conn, token_id)):
        raise click.ClickException(f"no API token with id {token_id}")
    click.echo(f"deleted API token {token_id}")

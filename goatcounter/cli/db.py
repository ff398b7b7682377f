"""`goatcounter db`: migrations, backups, upkeep, and the pageviews that failed."""
from __future__ import annotations

import os

import click
from flask.cli import with_appcontext

from goatcounter import upkeep
from goatcounter.counting import pending
from goatcounter.storage import db
from goatcounter.storage.db import get_db


@click.group("db")
def db_cli() -> None:
    """Manage the database: migrations, sites, API tokens, backups."""


@db_cli.group("create")
def create_cli() -> None:
    """Create a site or an API token."""


@db_cli.group("list")
def list_cli() -> None:
    """List sites or API tokens."""


@db_cli.group("update")
def update_cli() -> None:
    """Change a user."""


@db_cli.group("delete")
def delete_cli() -> None:
    """Delete an API token."""


@db_cli.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Apply pending schema migrations (the server also does this at start-up)."""
    applied = db.migrate(get_db())
    click.echo("applied: " + ", ".join(applied) if applied else "database is up to date")


@db_cli.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, writable=True))
@with_appcontext
def backup_command(target: str) -> None:
    """Write a consistent copy of the live database to TARGET."""
    if os.path.exists(target):
        raise click.BadParameter(f"{target} already exists; not overwriting it",
                                 param_hint="TARGET")
    # Pageviews still waiting in the spool files would not be in the copy.
    pending.drain(get_db())
    db.backup(get_db(), target)
    click.echo(f"backup written to {target}")


@db_cli.command("maintain")
@with_appcontext
def maintain_command() -> None:
    """Run every upkeep job now (sessions, keys, bots, exports, retention)."""
    for name, removed in upkeep.run_due(force=True).items():
        click.echo(f"{name}: {removed} removed")


@db_cli.command("retry-failed")
@with_appcontext
def retry_failed_command() -> None:
    """Count again the pageviews that could not be counted (kept in failed_hits)."""
    done = pending.retry_failed(db.get_db())
    left = db.get_db().execute("SELECT count(*) FROM failed_hits").fetchone()[0]
    click.echo(f"{done} pageview(s) counted; {left} still failing")

"""`goatcounter db`: migrations, backups, upkeep, and the pageviews that failed."""
from __future__ import annotations

import os

import click
from flask.cli import with_appcontext

from goatcounter import upkeep
from goatcounter.counting import pending
from goatcounter.storage import copy, db
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


@db_cli.command("copy")
@click.option("--from", "source", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The SQLite database file to copy (the server using it should be stopped).")
@click.option("--to", "target", required=True,
              help="The PostgreSQL database to copy into: postgresql://user@host/dbname.")
@click.option("--force", is_flag=True, help="Empty the target first if it holds data.")
def copy_command(source: str, target: str, force: bool) -> None:
    """Copy an installation from SQLite to PostgreSQL: every table and id (sequences set
    after). Pageviews still waiting in the source's spool are counted first."""
    if db.is_postgresql(source) or not db.is_postgresql(target):
        raise click.BadParameter("copies a SQLite file (--from) into a postgresql:// URL (--to)")
    _count_spool(source)
    src = db.connect(source)
    dst = db.connect(target)
    try:
        db.migrate(dst)
        busy = copy.occupied(dst)
        if busy and not force:
            raise copy.NotEmpty(", ".join(busy))
        total = sum(n for _, _, n in copy.plan(src, dst))
        with click.progressbar(length=total, label="copying rows") as bar:
            done = copy.copy(src, dst, force=force, progress=bar.update)
    except copy.NotEmpty as exc:
        raise click.ClickException(
            f"the target database is not empty (rows in {exc}); add --force to replace"
            " what it holds") from None
    finally:
        src.close()
        dst.close()
    click.echo(f"copied {sum(done.values())} rows in {len(done)} tables")


def _count_spool(source: str) -> None:
    from goatcounter import create_app
    app = create_app({"DB": os.path.abspath(source), "COUNT_IN_BACKGROUND": False,
                      "SECRET_KEY": "unused", "RATELIMIT_STORAGE": "memory",
                      "INSTANCE": os.path.dirname(os.path.abspath(source))})
    with app.app_context():
        counted = pending.drain()
    if counted:
        click.echo(f"counted {counted} pageview(s) that were waiting in the spool")


@db_cli.command("maintain")
@with_appcontext
def maintain_command() -> None:
    """Run every upkeep job now (sessions, keys, bots, exports, retention, planner
    statistics)."""
    for name, done in upkeep.run_due(force=True).items():
        click.echo(f"{name}: {done} tables analyzed" if name == "statistics"
                   else f"{name}: {done} removed")


@db_cli.command("retry-failed")
@with_appcontext
def retry_failed_command() -> None:
    """Count again the pageviews that could not be counted (kept in failed_hits)."""
    done = pending.retry_failed(db.get_db())
    left = db.get_db().execute("SELECT count(*) FROM failed_hits").fetchone()[0]
    click.echo(f"{done} pageview(s) counted; {left} still failing")

"""`goatcounter import`: hits from a GoatCounter CSV export."""
from __future__ import annotations

import io
import sys
from typing import IO, Any

import click
from flask.cli import with_appcontext

from goatcounter.accounts import sites
from goatcounter.exports.csvformat import VersionError
from goatcounter.exports.importer import Importer, open_export, read_position, run
from goatcounter.storage import db


def _run_with_progress(site: dict[str, Any], text: IO[str], raw: io.BufferedReader,
                       total: int | None) -> Importer:
    """`run`, with a progress bar by bytes read when the size is known (click draws it
    only on a terminal)."""
    if not total:
        return run(site, text)
    with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
        done = 0

        def progress() -> None:
            nonlocal done
            now = read_position(raw)
            bar.update(now - done)
            done = now

        result = run(site, text, on_batch=progress)
        progress()
    return result


def _site(site_id: int | None) -> dict[str, Any]:
    conn = db.get_db()
    if site_id is None:
        rows = conn.execute("SELECT id FROM sites WHERE state = 'a' LIMIT 2").fetchall()
        if len(rows) != 1:
            raise click.UsageError("there is more than one site; choose one with --site ID")
        site_id = rows[0][0]
    site = sites.get(conn, site_id)
    if site is None:
        raise click.BadParameter(f"no site with id {site_id}", param_hint="--site")
    return site


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--site", "site_id", type=int,
              help="Id of the site to import into (needed when there is more than one).")
@with_appcontext
def import_command(file: str, site_id: int | None) -> None:
    """Import hits from a CSV export (GoatCounter's format version 2, gzipped or not;
    - reads standard input).

    Hits keep their sessions and first visits, and the stats are updated as they go in.
    Bad rows are reported by line number and skipped. Exits with status 1 when any
    row was skipped.
    """
    site = _site(site_id)
    try:
        with open_export(file) as (text, raw, total):
            result = _run_with_progress(site, text, raw, total)
    except VersionError as exc:
        raise click.ClickException(str(exc)) from exc
    except FileNotFoundError as exc:
        raise click.BadParameter(f"{file}: no such file", param_hint="FILE") from exc
    except (OSError, EOFError) as exc:
        raise click.ClickException(f"{file}: can't be read: {exc}") from exc
    click.echo(f"imported {result.rows} rows into site {site['id']} "
               f"({result.stored} counted hits); {result.bad} bad rows skipped")
    if result.bad:
        raise SystemExit(1)

"""`goatcounter import`: hits from a GoatCounter CSV export."""
from __future__ import annotations

import datetime as dt
import sys
import time
from typing import IO, Any

import click
from flask.cli import with_appcontext

from goatcounter.accounts import sites
from goatcounter.exports import import_runs, importer
from goatcounter.exports.csvformat import VersionError
from goatcounter.storage import db


class _Rate:
    """Rows per second and the time left, for the progress bar (click's own estimate
    would count the rows an earlier run stored as if done in this one)."""

    def __init__(self, job: import_runs.Run) -> None:
        self.start, self.first, self.done = time.monotonic(), job.rows_done, job.rows_done
        self.total = job.rows_total

    def __call__(self, _item: Any) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        if not rate:
            return "0 rows/s"
        left = dt.timedelta(seconds=round(max(0, self.total - self.done) / rate))
        return f"{rate:,.0f} rows/s, {left} left"


def _run_with_progress(site: dict[str, Any], text: IO[str],
                       job: import_runs.Run) -> import_runs.Run:
    """`importer.run`, with a progress bar by rows (click draws it only on a terminal)."""
    rate = _Rate(job)
    with click.progressbar(length=max(job.rows_total, 1), label="importing", show_pos=True,
                           show_eta=False, item_show_func=rate, file=sys.stderr) as bar:
        bar.update(job.rows_done)

        def progress(now: import_runs.Run) -> None:
            step = min(now.rows_done, job.rows_total) - bar.pos
            rate.done = now.rows_done
            bar.update(max(0, step), now)

        result = importer.run(site, text, job, on_batch=progress)
        progress(result)
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


def _import(site: dict[str, Any], file: str, force: bool) -> import_runs.Run | None:
    """Import FILE, resuming an import of it that was stopped; None when it was imported
    before (and not `force`)."""
    with importer.source(file) as raw:
        found = importer.recognise(raw)
        name = "standard input" if file == "-" else file
        try:
            job = db.write(lambda c: import_runs.begin(c, site["id"], found, name, force))
        except import_runs.AlreadyImported as exc:
            click.echo(f"{name}: {exc}; nothing imported (--force imports it again)",
                       err=True)
            return None
        if job.resumed:
            click.echo(f"resuming import {job.id} of {name} after row {job.rows_done}",
                       err=True)
        try:
            with importer.text_of(raw) as text:
                return _run_with_progress(site, text, job)
        except import_runs.Conflict:
            raise  # the other run goes on; this one must not mark it failed
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}"
            db.write(lambda c: import_runs.fail(c, job, reason))
            raise


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--site", "site_id", type=int,
              help="Id of the site to import into (needed when there is more than one).")
@click.option("--force", is_flag=True,
              help="Import the file even when it was imported into the site before.")
@with_appcontext
def import_command(file: str, site_id: int | None, force: bool) -> None:
    """Import hits from a CSV export (GoatCounter's format version 2, gzipped or not;
    - reads standard input).

    Hits keep their sessions and first visits, and the stats are updated as they go in.
    Bad rows are reported by line number and skipped. Exits with status 1 when any
    row was skipped.

    Running it again after it was stopped (killed, a full disk) goes on after the last
    row it stored. A file that was imported into the site before is skipped, unless
    --force.
    """
    site = _site(site_id)
    try:
        result = _import(site, file, force)
    except VersionError as exc:
        raise click.ClickException(str(exc)) from exc
    except import_runs.Conflict as exc:
        raise click.ClickException(str(exc)) from exc
    except FileNotFoundError as exc:
        raise click.BadParameter(f"{file}: no such file", param_hint="FILE") from exc
    except (OSError, EOFError) as exc:
        raise click.ClickException(f"{file}: can't be read: {exc}") from exc
    if result is None:
        return
    click.echo(f"imported {result.rows_imported} rows into site {site['id']} "
               f"({result.hits_counted} counted hits); {result.rows_refused} bad rows skipped")
    if result.rows_refused:
        raise SystemExit(1)

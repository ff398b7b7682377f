"""`goatcounter tail`: the live log in a terminal, as the requests arrive."""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable

import click
from flask.cli import with_appcontext

from goatcounter import clock
from goatcounter.accounts import sites
from goatcounter.counting import livelog
from goatcounter.storage import db

# How often the log is read; entries show within POLL + Follower.HOLD seconds (plus the
# moment a worker takes to write them).
POLL = 0.2


@click.command("tail")
@click.option("--site", "site_id", type=int, help="Only this site's entries (default: all sites).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line (time, site, endpoint, path, decision, reason, ...).")
@click.option("--since", type=click.FloatRange(min=0), default=0, show_default=True,
              help="First print the entries of the last N seconds (at most the newest "
                   f"{livelog.KEEP}).")
@with_appcontext
def tail_command(site_id: int | None, as_json: bool, since: float) -> None:
    """Print live log entries as they happen, until interrupted: every request to /count
    and every hit of an API batch, with its decision (counted, bot, ignored, invalid,
    ratelimited, duplicate) and the reason."""
    conn = db.get_db()
    if site_id is not None and sites.get(conn, site_id) is None:
        raise click.BadParameter(f"there is no site {site_id}", param_hint="--site")
    show = _printer(as_json)
    with contextlib.suppress(KeyboardInterrupt):
        follow(conn, show, site_id=site_id, since=since)


def _printer(as_json: bool) -> Callable[[dict], None]:
    if as_json:
        return lambda entry: click.echo(json.dumps(livelog.as_json(entry), ensure_ascii=False))
    return lambda entry: click.echo(livelog.line(entry))


def follow(conn: sqlite3.Connection, show: Callable[[dict], None], *,
           site_id: int | None = None, since: float = 0,
           stop: threading.Event | None = None, start_id: int | None = None) -> None:
    """Show entries as they come (after those of the last `since` seconds) until `stop`
    is set (or forever); from `start_id` on when given, else from the newest entry."""
    with db.read(conn):
        start = livelog.newest_id(conn, site_id) if start_id is None else start_id
        earlier = livelog.last_seconds(conn, since, site_id) if since else []
    for entry in earlier:
        show(entry)
    follower = livelog.Follower(site_id, start)
    while stop is None or not stop.is_set():
        with db.read(conn):
            found = follower.poll(conn, clock.now())
        for entry in found:
            show(entry)
        if stop is not None:
            stop.wait(POLL)
        else:
            time.sleep(POLL)

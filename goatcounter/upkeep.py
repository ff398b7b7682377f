"""Periodic upkeep: forget ended sessions, old idempotency keys, bot logs, rate-limit
counters and export files, apply the retention settings, and keep SQLite's planner
statistics current.

Each job records when it last ran in the `jobs` table, so that with several workers
only one of them runs it. Workers try from their background thread (counting/pending.py);
`goatcounter db maintain` runs every job at once (from cron, say, if the background
thread is turned off).
"""
from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app

from goatcounter import clock
from goatcounter.accounts import sites
from goatcounter.counting import aggregates, idempotency, sessions
from goatcounter.exports import exporter
from goatcounter.storage import db

log = logging.getLogger(__name__)
DAY = 86400
# Rows deleted per transaction, so that counting never waits long behind a purge.
CHUNK = 5000


def _sessions(conn: sqlite3.Connection) -> int:
    hours = int(current_app.config["SESSION_HOURS"])
    return db.write(lambda c: sessions.purge(c, int(clock.now()), hours * 3600), conn)


def _idempotency(conn: sqlite3.Connection) -> int:
    return db.write(idempotency.purge, conn)


def _chunked(conn: sqlite3.Connection, sql: str, args: dict[str, Any]) -> int:
    total = 0
    while True:
        gone = db.write(lambda c: c.execute(sql, {**args, "n": CHUNK}).rowcount, conn)
        total += gone
        if gone < CHUNK:
            return total


def _bots(conn: sqlite3.Connection) -> int:
    cutoff = int(clock.now()) - int(current_app.config["BOT_RETENTION_DAYS"]) * DAY
    return _chunked(conn, "DELETE FROM bots WHERE id IN (SELECT id FROM bots"
                          " WHERE created_at < :cutoff LIMIT :n)", {"cutoff": cutoff})


def _hits(conn: sqlite3.Connection) -> int:
    """Raw hits past HIT_RETENTION_DAYS (the aggregates stay)."""
    days = int(current_app.config["HIT_RETENTION_DAYS"])
    if days <= 0:
        return 0
    # Ids grow with time, so the old rows are the first ones of the table.
    cutoff = int(clock.now()) - days * DAY
    return _chunked(conn, "DELETE FROM hits WHERE id IN (SELECT id FROM hits"
                          " WHERE created_at < :cutoff ORDER BY id LIMIT :n)", {"cutoff": cutoff})


def _site_retention(conn: sqlite3.Connection) -> int:
    """Everything of a site older than its `data_retention` setting (days), as upstream."""
    removed = 0
    for row in conn.execute(f"SELECT {sites.SITE_COLUMNS} FROM sites").fetchall():
        site = sites.decode(row)
        days = int(site["settings"].get("data_retention") or 0)
        if days <= 0:
            continue
        cutoff = int(clock.now()) - days * DAY
        cutoff -= cutoff % DAY
        removed += _chunked(conn, "DELETE FROM hits WHERE id IN (SELECT id FROM hits"
                                  " WHERE site_id = :site AND created_at < :cutoff LIMIT :n)",
                            {"site": site["id"], "cutoff": cutoff})
        removed += db.write(functools.partial(_aggregates_before, site_id=site["id"],
                                              cutoff=cutoff), conn)
    return removed


def _time_column(conn: sqlite3.Connection, table: str) -> str | None:
    columns = db.columns(conn, table)
    return next((c for c in ("hour", "day", "month") if c in columns), None)


def _aggregates_before(conn: sqlite3.Connection, site_id: int, cutoff: int) -> int:
    """Rows of a site's aggregate tables that are wholly before `cutoff`."""
    removed = 0
    tables = [*aggregates.TABLES, "visitor_days", "visitor_prevs", "path_months"]
    for table in tables:
        column = _time_column(conn, table)
        if column is None:
            continue
        # `month` rows hold a whole month: only months that ended before the cutoff go.
        limit = cutoff if column != "month" else cutoff - 31 * DAY
        # Table and column names come from the fixed lists above.
        removed += conn.execute(f"DELETE FROM {table} WHERE site_id = :s AND {column} < :c",
                                {"s": site_id, "c": limit}).rowcount
    return removed


def _exports(conn: sqlite3.Connection) -> int:
    return exporter.purge(conn)


# The tables the stats and the dashboard read with plans that depend on their sizes.
STATISTICS_TABLES = (*aggregates.TABLES, "path_months", "visitor_days", "visitor_prevs")


def _analyze(conn: sqlite3.Connection, table: str) -> None:
    conn.execute(f"ANALYZE {table}")


def _statistics(conn: sqlite3.Connection) -> int:
    """SQLite's numbers for its query planner, table by table (PostgreSQL's own
    autovacuum keeps them there). A new installation has none, and without them the
    planner reads some paths' hours by scanning every path's: 24 ms instead of 3 for
    stats/total with include_paths at a million hits."""
    if db.engine(conn) != "sqlite":
        return 0
    for table in STATISTICS_TABLES:
        # One transaction per table: counting waits for one table at a time, never for
        # all of them (0.7 s for all of bench/stats.py's million hits, 0.1 s at most for
        # one). The names come from the fixed list above.
        db.write(functools.partial(_analyze, table=table), conn)
    return len(STATISTICS_TABLES)


def _ratelimits(conn: sqlite3.Connection) -> int:
    storage = current_app.extensions["goatcounter_limiter"].storage
    purge = getattr(storage, "purge", None)
    return purge() if purge is not None else 0


# name: (seconds between runs, job)
JOBS: dict[str, tuple[int, Callable[[sqlite3.Connection], int]]] = {
    "sessions": (600, _sessions),
    "idempotency_keys": (3600, _idempotency),
    "exports": (600, _exports),
    "ratelimits": (3600, _ratelimits),
    "bots": (3600, _bots),
    "hit_retention": (6 * 3600, _hits),
    "site_retention": (6 * 3600, _site_retention),
    "statistics": (86400, _statistics),
}


def _claim(conn: sqlite3.Connection, name: str, every: int, now: int) -> bool:
    """Mark a job as run now if it is due; True if this process should run it."""
    def run(c: sqlite3.Connection) -> bool:
        row = c.execute("SELECT last_run FROM jobs WHERE name = :n", {"n": name}).fetchone()
        if row is not None and now - row[0] < every:
            return False
        c.execute("INSERT INTO jobs (name, last_run) VALUES (:n, :now) ON CONFLICT (name)"
                  " DO UPDATE SET last_run = excluded.last_run", {"n": name, "now": now})
        return True
    return db.write(run, conn)


def run_due(conn: sqlite3.Connection | None = None, force: bool = False) -> dict[str, int]:
    """Run the jobs that are due (all of them with `force`); returns what each removed."""
    conn = conn or db.get_db()
    now = int(clock.now())
    done: dict[str, int] = {}
    for name, (every, job) in JOBS.items():
        if not _claim(conn, name, 0 if force else every, now):
            continue
        try:
            done[name] = job(conn)
        except Exception:
            # One failing job must not stop the others; it is tried again next time.
            log.exception("maintenance job %s failed", name)
    return done


class Schedule:
    """Per process: look for due jobs at most once a minute."""

    EVERY = 60.0

    def __init__(self) -> None:
        self.next = 0.0

    def tick(self, app: Flask) -> None:
        if time.monotonic() < self.next:
            return
        self.next = time.monotonic() + self.EVERY
        with app.app_context():
            run_due()


def init_app(app: Flask) -> None:
    """Let each worker's background thread look for due jobs."""
    app.extensions["goatcounter_pending"].idle_jobs.append(Schedule().tick)

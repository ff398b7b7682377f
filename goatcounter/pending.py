"""Pageviews of the public /count endpoint: stored at once, counted in batches.

A browser's pageview is written to `pending_hits` in a transaction of one small row
before the reply goes out, so it is never lost. Counting it (paths, sessions, the hit
row and the aggregates) costs much less per pageview when done for many at once, so
the rows are counted in batches: right after a reply when the worker hasn't counted for
a moment, by a background thread of each worker when traffic stops, and before any
stats or export read, so that what the API shows is always complete.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import defaultdict
from typing import Any

import click
from flask import Flask, current_app, request
from flask.cli import with_appcontext

from . import db, maintenance, sites, store
from .pipeline.process import Hit

log = logging.getLogger(__name__)

BATCH = 2000
# A worker counts pending rows after a reply at most this often, so that under load
# each batch holds many pageviews.
DRAIN_EVERY = 0.1
IDLE_CHECK = 0.5

_FIELDS = ("path", "title", "event", "ref", "ref_scheme", "campaign", "width", "bot",
           "browser", "system", "location", "language", "user_agent", "session_key",
           "created_at", "ignored")


def encode(hit: Hit) -> str:
    """A hit as the text kept in the queue."""
    return json.dumps([getattr(hit, f) for f in _FIELDS], ensure_ascii=False,
                      separators=(",", ":"))


def decode(text: str) -> Hit:
    values: dict[str, Any] = dict(zip(_FIELDS, json.loads(text), strict=True))
    for key in ("browser", "system"):
        if values[key] is not None:
            values[key] = tuple(values[key])
    return Hit(**values)


def add(site_id: int, hit: Hit, conn: sqlite3.Connection) -> None:
    """Keep one accepted pageview until it is counted."""
    db.write(lambda c: c.execute("INSERT INTO pending_hits (site_id, hit) VALUES (:s, :h)",
                                 {"s": site_id, "h": encode(hit)}), conn)


def _batch(conn: sqlite3.Connection, limit: int = BATCH) -> int:
    rows = conn.execute("SELECT id, site_id, hit FROM pending_hits ORDER BY id LIMIT :n",
                        {"n": limit}).fetchall()
    if not rows:
        return 0
    by_site: dict[int, list[Hit]] = defaultdict(list)
    for row in rows:
        by_site[row["site_id"]].append(decode(row["hit"]))
    for site_id, hits in by_site.items():
        site = sites.get(conn, site_id)
        if site is not None:
            store.save_in(conn, site, hits)
    conn.execute("DELETE FROM pending_hits WHERE id <= :last", {"last": rows[-1]["id"]})
    return len(rows)


def _set_aside(conn: sqlite3.Connection, error: BaseException) -> None:
    """Move the oldest pending row to failed_hits, with the reason it failed."""
    def run(c: sqlite3.Connection) -> None:
        row = c.execute("SELECT id, site_id, hit FROM pending_hits ORDER BY id LIMIT 1"
                        ).fetchone()
        if row is None:
            return
        c.execute("INSERT INTO failed_hits (site_id, hit, error, failed_at)"
                  " VALUES (:s, :h, :e, :at)",
                  {"s": row["site_id"], "h": row["hit"], "e": f"{type(error).__name__}: "
                   f"{error}", "at": int(time.time())})
        c.execute("DELETE FROM pending_hits WHERE id = :id", {"id": row["id"]})
    db.write(run, conn)


def _one_by_one(conn: sqlite3.Connection, count: int) -> int:
    """After a batch failed: count its rows one at a time, and set aside the ones that
    fail alone, so that one bad pageview can't hold up all that came after it."""
    done = 0
    for _ in range(count):
        try:
            done += store.write(lambda c: _batch(c, 1), conn)
        except Exception as exc:  # whatever it is, it must not stop the queue
            if db.is_busy(exc):
                raise
            log.exception("pending pageview set aside")
            _set_aside(conn, exc)
    return done


def drain(conn: sqlite3.Connection | None = None) -> int:
    """Count every pending pageview; returns how many were counted."""
    conn = conn or db.get_db()
    total = 0
    while conn.execute("SELECT 1 FROM pending_hits LIMIT 1").fetchone():
        try:
            total += store.write(_batch, conn)
        except Exception as exc:
            if db.is_busy(exc):
                raise
            total += _one_by_one(conn, BATCH)
    return total


class Drainer:
    """Per process: counts pending rows after replies (throttled) and when idle."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.last = 0.0
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.stopping = threading.Event()

    def soon(self) -> None:
        """Called after a /count reply has gone out."""
        if self.app.config["COUNT_IN_BACKGROUND"]:
            self._ensure_thread()
        if time.monotonic() - self.last >= DRAIN_EVERY:
            self.run()

    def run(self) -> None:
        if not self.lock.acquire(blocking=False):
            return
        try:
            self.last = time.monotonic()
            with self.app.app_context():
                drain()
        except Exception:
            # The rows stay pending and are counted on the next try.
            log.exception("counting pending pageviews failed")
        finally:
            self.lock.release()

    def _ensure_thread(self) -> None:
        if self.thread is not None and self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._idle_loop, name="goatcounter-pending",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """End the background thread (for tests; workers just exit)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _idle_loop(self) -> None:
        schedule = maintenance.Schedule()
        while not self.stopping.wait(IDLE_CHECK):
            if time.monotonic() - self.last >= IDLE_CHECK:
                self.run()
            try:
                schedule.tick(self.app)
            except Exception:
                log.exception("maintenance failed")


def drainer() -> Drainer:
    """The drainer of the current app."""
    return current_app.extensions["goatcounter_pending"]


def retry_failed(conn: sqlite3.Connection) -> int:
    """Queue the pageviews that were set aside again (after the cause was fixed) and
    count them; returns how many were counted."""
    def run(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO pending_hits (site_id, hit) SELECT site_id, hit FROM failed_hits"
                  " ORDER BY id")
        c.execute("DELETE FROM failed_hits")
    db.write(run, conn)
    return drain(conn)


@db.db_cli.command("retry-failed")
@with_appcontext
def retry_failed_command() -> None:
    """Count again the pageviews that could not be counted (kept in failed_hits)."""
    done = retry_failed(db.get_db())
    left = db.get_db().execute("SELECT count(*) FROM failed_hits").fetchone()[0]
    click.echo(f"{done} pageview(s) counted; {left} still failing")


# Reads that must see every accepted pageview.
_READS = ("/api/v0/stats", "/api/v0/paths", "/api/v0/export")


def _before_read() -> None:
    if request.path.startswith(_READS):
        conn = db.get_db()
        if conn.execute("SELECT 1 FROM pending_hits LIMIT 1").fetchone():
            drain(conn)


def init_app(app: Flask) -> None:
    app.extensions["goatcounter_pending"] = Drainer(app)
    app.before_request(_before_read)


"""Durability: WAL, waiting for other writers instead of failing, a clean 503 when the
database stays locked, and backups of a live database."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from flask import Flask

from goatcounter import clock, create_app
from goatcounter.counting import pending
from goatcounter.counting.pipeline.process import Incoming, process
from goatcounter.storage import db
from goatcounter.web.error_replies import BUSY_MESSAGE
from tests.conftest import API, UA, assert_error, make_site, query

RATELIMIT = "api:none,api-count:none"


def batch(prefix: str, n: int) -> dict[str, Any]:
    return {"hits": [{"path": f"{prefix}/{i}", "user_agent": UA, "ip": f"192.0.2.{i % 250 + 1}"}
                     for i in range(n)]}


def stored_hits(app: Flask) -> int:
    return query(app, "SELECT count(*) FROM hits", drain=False)[0][0]


class HeldLock:
    """The database's write lock, held by another connection (as another process that
    writes would hold it) until `release`."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")
        self.released_at = 0.0

    def release(self) -> None:
        self.released_at = time.monotonic()
        self.conn.execute("COMMIT")
        self.conn.close()

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.release)
        timer.start()
        return timer


@pytest.mark.sqlite_only("WAL and the busy timeout are SQLite's")
def test_wal_mode_and_busy_timeout(app):
    with app.app_context():
        conn = db.get_db()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS


@pytest.mark.sqlite_only("SQLite's busy timeout against its lock file")
def test_busy_timeout_covers_the_longest_write(app, api, site_token):
    """The largest writes the server makes (a full count batch, a batch of pending
    pageviews) take a small part of the busy timeout, so a writer waiting behind one of
    them never gives up."""
    start = time.monotonic()
    resp = api.post("/api/v0/count", batch("/big", 500))
    api_batch = time.monotonic() - start
    assert resp.status_code == 202

    site, _ = site_token
    with app.app_context():
        now = clock.now()
        for i in range(pending.BATCH):
            hit = process(Incoming(path=f"/pending/{i}", user_agent=UA,
                                   ip=f"198.51.100.{i % 250 + 1}"),
                          site["settings"], now, f"key-{i % 300}")
            assert not isinstance(hit, str)
            pending.add(site["id"], hit)
        start = time.monotonic()
        assert pending.drain() == pending.BATCH
        drain_batch = time.monotonic() - start
    # A fifth of the timeout: room for a slow, shared machine.
    limit = db.BUSY_TIMEOUT_MS / 1000 / 5
    assert api_batch < limit and drain_batch < limit, (api_batch, drain_batch)


def test_count_waits_for_another_writer(app, api):
    api.get("/api/v0/me")  # the token's daily "last used" write, out of the way
    lock = HeldLock(app.config["DB_PATH"])
    timer = lock.release_after(1.0)
    try:
        resp = api.post("/api/v0/count", batch("/waited", 3))
    finally:
        timer.join()
    assert resp.status_code == 202, resp.get_data(as_text=True)
    assert time.monotonic() - lock.released_at < 5
    assert stored_hits(app) == 3


def test_pixel_waits_for_another_writer(app, client, site_token):
    site, _ = site_token
    lock = HeldLock(app.config["DB_PATH"])
    timer = lock.release_after(1.0)
    start = time.monotonic()
    try:
        resp = client.get("/count?p=/waited", headers={"Host": site["cname"], "User-Agent": UA})
    finally:
        timer.join()
    assert resp.status_code == 200
    assert time.monotonic() - start >= 0.9
    with app.app_context():
        pending.drain()
    assert stored_hits(app) == 1


@pytest.fixture
def impatient_app(app_config, monkeypatch) -> Flask:
    """An app whose writers give up after half a second instead of 45."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(db, "RETRY_SECONDS", 0.5)
    return create_app(app_config)


@pytest.mark.sqlite_only("holds SQLite's write lock file; test_postgresql covers a lost connection")
def test_database_that_stays_locked_is_a_503(impatient_app):
    app = impatient_app
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    assert api.get("/api/v0/me").status_code == 200
    lock = HeldLock(app.config["DB_PATH"])
    try:
        resp = api.post("/api/v0/count", batch("/never", 2))
    finally:
        lock.release()
    assert_error(resp, 503, BUSY_MESSAGE)
    assert resp.headers["Retry-After"].isdigit()
    assert stored_hits(app) == 0
    # Once the lock is gone, the client's retry is counted.
    assert api.post("/api/v0/count", batch("/never", 2)).status_code == 202
    assert stored_hits(app) == 2


def test_pixel_is_accepted_while_the_database_is_locked(impatient_app):
    """A pageview goes to the worker's spool file, which needs no database lock: it is
    accepted while a writer holds the database, and counted once it lets go."""
    app = impatient_app
    site, _ = make_site(app)
    with app.app_context():
        app.extensions["goatcounter_hosts"].get(db.get_db(), site["cname"])
    lock = HeldLock(app.config["DB_PATH"])
    try:
        resp = app.test_client().get("/count?p=/waited",
                                     headers={"Host": site["cname"], "User-Agent": UA})
    finally:
        lock.release()
    assert resp.status_code == 200
    with app.app_context():
        pending.drain()
        assert db.get_db().execute("SELECT count(*) FROM hits").fetchone()[0] == 1


def test_other_sqlite_errors_stay_500(app, api, monkeypatch):
    from goatcounter.api import count

    def broken(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("no such table: hits")

    monkeypatch.setattr(count.store, "save", broken)
    resp = api.post("/api/v0/count", batch("/x", 1))
    body = assert_error(resp, 500)
    assert body["error"].startswith("unexpected error code")


BACKUP_BATCH = 50


@pytest.mark.sqlite_only("db backup copies the SQLite file")
def test_backup_of_a_live_database_is_consistent(app, api, tmp_path):
    # Enough data that copying it takes a while.
    for n in range(20):
        assert api.post("/api/v0/count", batch(f"/seed/{n}", 500)).status_code == 202
    seeded = stored_hits(app)

    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        client = API(app.test_client(), api.token, api.host)
        n = 0
        while not stop.is_set():
            resp = client.post("/api/v0/count", batch(f"/live/{n}", BACKUP_BATCH))
            assert resp.status_code == 202
            n += 1
            written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 3:
            time.sleep(0.01)
        target = tmp_path / "copy.sqlite3"
        env = dict(os.environ, GOATCOUNTER_INSTANCE=app.instance_path)
        command = [sys.executable, "-m", "goatcounter", "db", "backup", str(target)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        during = len(written)
        while len(written) < during + 3:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert "backup written" in result.stdout

    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    hits = copy.execute("SELECT count(*) FROM hits").fetchone()[0]
    by_path = copy.execute("SELECT sum(pageviews) FROM hit_counts").fetchone()[0]
    by_site = copy.execute("SELECT sum(pageviews) FROM site_counts").fetchone()[0]
    visits = copy.execute("SELECT sum(total) FROM hit_counts").fetchone()[0]
    first = copy.execute("SELECT count(*) FROM hits WHERE first_visit = 1").fetchone()[0]
    copy.close()
    assert hits == by_path == by_site
    assert visits == first
    # Whole batches only: each was one transaction, and the copy is one snapshot.
    assert (hits - seeded) % BACKUP_BATCH == 0
    assert seeded < hits < stored_hits(app)

"""Pageviews of /count: stored before the reply, counted in batches afterwards."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time

import pytest
from flask import Flask

from goatcounter import create_app
from goatcounter.counting import pending, spool, store
from goatcounter.counting.pipeline import useragents
from goatcounter.counting.pipeline.process import Incoming, process
from goatcounter.storage import db
from tests.conftest import Client, make_site, query
from tests.waiting import wait_until

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


def counts(app) -> tuple[int, int]:
    """(pageviews waiting to be counted, stored hits)."""
    with app.app_context():
        waiting = 0
        conn = db.get_db()
        for name, path in pending.queue().files():
            start = conn.execute("SELECT coalesce(max(counted), 0) FROM pending_files"
                                 " WHERE name = ?", (name,)).fetchone()[0]
            waiting += sum(1 for p in spool.read_lines(path, start, 1 << 30) if p.line)
        return waiting, conn.execute("SELECT count(*) FROM hits").fetchone()[0]


def pixel(app, site, path: str = "/x"):
    return app.test_client().get(f"/count?p={path}", headers={"Host": site["cname"],
                                                              "User-Agent": UA},
                                 environ_base={"REMOTE_ADDR": "8.8.8.8"})


@pytest.fixture
def quiet(app):
    """No counting right after the reply: as a worker that counted a moment ago."""
    app.extensions["goatcounter_pending"].last = time.monotonic() + 3600
    return app


def test_a_reply_means_the_pageview_is_stored(quiet, app_config):
    site, _ = make_site(quiet)
    assert pixel(quiet, site).status_code == 200
    assert counts(quiet) == (1, 0)
    # A new process (a restart after a crash, say) counts what was left.
    again = create_app(app_config)
    with again.app_context():
        assert pending.drain() == 1
    assert counts(quiet) == (0, 1)


def test_counted_right_after_the_reply(app):
    site, _ = make_site(app)
    pixel(app, site)
    assert counts(app) == (0, 1)


def test_stats_reads_see_every_pageview(quiet):
    site, token = make_site(quiet)
    for path in ("/a", "/b", "/a"):
        pixel(quiet, site, path)
    assert counts(quiet)[0] == 3
    resp = quiet.test_client().get("/api/v0/stats/total", headers={
        "Host": site["cname"], "Authorization": f"Bearer {token}"})
    assert resp.get_json()["total"] == 2
    assert counts(quiet) == (0, 3)


def test_idle_workers_count_in_the_background(app_config, monkeypatch):
    monkeypatch.setattr(pending, "IDLE_CHECK", 0.05)
    app_config["COUNT_IN_BACKGROUND"] = True
    app = create_app(app_config)
    app.test_client_class = Client
    site, _ = make_site(app)
    app.extensions["goatcounter_pending"].last = time.monotonic() + 0.2
    pixel(app, site)
    assert counts(app) == (1, 0)
    try:
        wait_until(lambda: counts(app) == (0, 1), "the idle worker's thread counting", 5)
    finally:
        app.extensions["goatcounter_pending"].stop()


def test_a_pageview_that_fails_is_kept_and_can_be_retried(quiet, monkeypatch):
    site, _ = make_site(quiet)
    pixel(quiet, site)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "save_in", broken)
    quiet.extensions["goatcounter_pending"].run()
    assert counts(quiet) == (0, 0)
    monkeypatch.undo()
    result = quiet.test_cli_runner().invoke(args=["db", "retry-failed"])
    assert result.exit_code == 0, result.output
    assert "1 pageview" in result.output
    assert counts(quiet) == (0, 1)


def test_queue_keeps_every_field(app):
    site, _ = make_site(app)
    hit = process(Incoming(path="/p?utm_source=x", title="T ☕", ref="https://www.google.com/",
                           query="utm_campaign=c", width=1280, user_agent=UA, ip="8.8.8.8",
                           created_at=1_700_000_000.4),
                  site["settings"], 1_700_000_100.0, "key")
    assert not isinstance(hit, str)
    assert pending.decode(pending.encode(site["id"], hit)) == (site["id"], hit)


def test_a_pageview_that_can_not_be_counted_is_set_aside(quiet):
    """One bad row must not hold up every pageview queued after it."""
    site, _ = make_site(quiet)
    pixel(quiet, site, "/before")
    with quiet.app_context():
        pending.queue().append(b"[not a hit\n")
    pixel(quiet, site, "/after")
    with quiet.app_context():
        assert pending.drain() == 2
    assert counts(quiet) == (0, 2)
    failed = query(quiet, "SELECT hit, error FROM failed_hits", drain=False)
    assert failed[0][0] == "[not a hit" and failed[0][1].startswith("JSONDecodeError")


def test_huge_bot_code_is_refused(app):
    site, _ = make_site(app)
    resp = app.test_client().get("/count?p=/x&b=" + "9" * 30, headers={
        "Host": site["cname"], "User-Agent": UA})
    assert resp.status_code == 400
    assert resp.headers["X-Goatcounter"].startswith("error decoding parameters: b: ")


def test_full_files_are_replaced_and_removed_once_counted(quiet, monkeypatch):
    monkeypatch.setattr(spool, "ROTATE_BYTES", 100)
    site, _ = make_site(quiet)
    for i in range(4):
        pixel(quiet, site, f"/r{i}")
    with quiet.app_context():
        assert len(list(pending.queue().files())) == 4
        assert pending.drain() == 4
        # Only the file still open for writing is left.
        assert len(list(pending.queue().files())) <= 1
    assert counts(quiet) == (0, 4)


def test_counting_twice_counts_once(quiet):
    """Two workers counting the same file take turns; the recorded position keeps
    either from counting a line again."""
    site, _ = make_site(quiet)
    for path in ("/a", "/b"):
        pixel(quiet, site, path)
    other = create_app(quiet.config | {"INSTANCE": quiet.instance_path})
    with other.app_context():
        assert pending.drain() == 2
    with quiet.app_context():
        assert pending.drain() == 0
    assert counts(quiet) == (0, 2)


@pytest.mark.parametrize("dies_at", [1, 2, 3])
def test_retry_failed_interrupted_counts_nothing_twice(quiet, monkeypatch, dies_at):
    """A retry killed at any write leaves every pageview either counted or still set
    aside, never both."""
    site, _ = make_site(quiet)
    pixel(quiet, site, "/a")
    pixel(quiet, site, "/b")

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(store, "save_in", broken)
        quiet.extensions["goatcounter_pending"].run()
    assert len(query(quiet, "SELECT * FROM failed_hits", drain=False)) == 2
    real = db.write
    calls = []

    def dies(fn, conn=None, wait=True):
        calls.append(fn)
        if len(calls) == dies_at:
            raise KeyboardInterrupt  # as if the process were killed here
        return real(fn, conn, wait)

    with monkeypatch.context() as patch, contextlib.suppress(KeyboardInterrupt):
        patch.setattr(db, "write", dies)
        with quiet.app_context():
            pending.retry_failed(db.get_db())
    with quiet.app_context():
        pending.retry_failed(db.get_db())
    assert [tuple(r) for r in query(
        quiet, "SELECT p.path, count(*) FROM hits h JOIN paths p ON p.id = h.path_id"
               " GROUP BY p.path ORDER BY p.path")] == [("/a", 1), ("/b", 1)]
    assert query(quiet, "SELECT * FROM failed_hits", drain=False) == []


def test_lines_written_before_classify_later_still_count(app):
    site, _ = make_site(app)
    hit = process(Incoming(path="/old", user_agent=UA, ip="8.8.8.8"), site["settings"],
                  1_700_000_100.0, "key")
    assert not isinstance(hit, str)
    line = pending.encode(site["id"], hit)
    old = line.replace(b",false]\n", b"]\n")
    assert old != line
    assert pending.decode(old) == (site["id"], hit)


def test_a_spool_line_is_the_json_the_standard_library_writes(app):
    """Lines written by earlier versions and by this one read alike: the same bytes as
    json.dumps, for texts beyond ASCII, floats, tuples, booleans and None."""
    site, _ = make_site(app)
    hit = process(Incoming(path="/ü/☕ \"q\"", title="Ωmega\ttab\\", ref="https://ex.org/?a=1",
                           width=1920, user_agent=UA + " 𝄞", ip="8.8.8.8", language="nl"),
                  site["settings"], 1_700_000_100.123456, "key")
    assert not isinstance(hit, str)
    values = [site["id"], *(getattr(hit, f) for f in pending._FIELDS)]
    line = pending.encode(site["id"], hit)
    assert line == (json.dumps(values, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    assert pending.decode(line) == (site["id"], hit)


def test_lines_read_together_are_read_as_each_alone(app):
    """decode_all gives what decode gives for each line: newest lines, older ones, a
    classified one and one left to classify, on one site or two."""
    site, _ = make_site(app)
    other, _ = make_site(app, "other.example.com")
    hits = [process(Incoming(path=f"/p{i}", title="T ☕", ref="https://www.google.com/",
                             width=390, user_agent=UA, ip="8.8.8.8"), site["settings"],
                    1_700_000_100.0 + i, None if i == 2 else f"key{i}",
                    classify_later=i % 2 == 0) for i in range(4)]
    assert not any(isinstance(hit, str) for hit in hits)
    lines = [pending.encode(site["id"] if i < 3 else other["id"], hit).rstrip(b"\n")
             for i, hit in enumerate(hits)]
    lines.append(lines[1].replace(b",false]", b"]"))  # before classify_later
    assert pending.decode_all(lines) == [pending.decode(line) for line in lines]
    assert pending.decode_all([]) == []


@pytest.mark.parametrize("bad", [b"[1,", b"[1, 2]", b"7", b"[1,2],[3,4]"])
def test_a_broken_line_among_others_fails_as_it_does_alone(app, bad):
    site, _ = make_site(app)
    hit = process(Incoming(path="/ok", user_agent=UA, ip="8.8.8.8"), site["settings"],
                  1_700_000_100.0, "key", classify_later=True)
    assert not isinstance(hit, str)
    good = pending.encode(site["id"], hit).rstrip(b"\n")
    with pytest.raises(Exception) as alone:
        pending.decode(bad)
    with pytest.raises(type(alone.value)):
        pending.decode_all([good, bad, good])


def test_a_busy_worker_counts_in_big_batches(app, monkeypatch):
    monkeypatch.setattr(pending, "FULL", 3)
    site, _ = make_site(app)
    pixel(app, site)
    assert counts(app) == (0, 1)
    pixel(app, site, "/a")
    pixel(app, site, "/b")
    # Counted a moment ago, fewer than FULL waiting: answered, not counted yet.
    assert counts(app) == (2, 1)
    pixel(app, site, "/c")
    assert counts(app) == (0, 4)


def test_the_user_agent_steps_run_when_counting(quiet):
    site, _ = make_site(quiet)
    client = quiet.test_client()
    for ua in (UA, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
               ""):
        assert client.get("/count?p=/u", headers={"Host": site["cname"], "User-Agent": ua},
                          environ_base={"REMOTE_ADDR": "8.8.8.8"}).status_code == 200
    assert [tuple(r) for r in query(quiet, "SELECT bot FROM bots ORDER BY id")] == [(5,), (7,)]
    assert [tuple(r) for r in query(
        quiet, "SELECT b.name FROM hits JOIN browsers b ON b.id = hits.browser_id")] == \
        [("Firefox",)]


GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def pixels(app, site, uas: list[str]) -> None:
    """A pageview of /p<i> for each user agent, each from an address of its own."""
    client = app.test_client()
    for i, ua in enumerate(uas):
        assert client.get(f"/count?p=/p{i}", headers={"Host": site["cname"], "User-Agent": ua},
                          environ_base={"REMOTE_ADDR": f"8.8.8.{i + 1}"}).status_code == 200


def stored_paths(app) -> tuple[list[str], list[str], int]:
    """(paths of the stored hits, paths of the stored bots, pageviews in hit_counts)."""
    hits = [r[0] for r in query(app, "SELECT p.path FROM hits h JOIN paths p"
                                     " ON p.id = h.path_id ORDER BY p.path", drain=False)]
    bots = [r[0] for r in query(app, "SELECT path FROM bots ORDER BY path", drain=False)]
    total = query(app, "SELECT coalesce(sum(total), 0) FROM hit_counts", drain=False)[0][0]
    return hits, bots, total


def test_pixels_are_counted_in_one_batch_with_a_bot_among_them(quiet, monkeypatch):
    site, _ = make_site(quiet)
    pixels(quiet, site, [UA, UA + " a", GOOGLEBOT, UA + " b", UA + " c"])
    assert counts(quiet) == (5, 0)
    batches = []
    real = store.write

    def write(fn, conn=None, wait=True):
        result = real(fn, conn, wait)
        batches.append(result.counted)
        return result

    monkeypatch.setattr(store, "write", write)
    with quiet.app_context():
        assert pending.drain() == 5
    # One transaction counted the five; the next found nothing left.
    assert batches == [5, 0]
    assert stored_paths(quiet) == (["/p0", "/p1", "/p3", "/p4"], ["/p2"], 4)


def test_a_batch_that_fails_loses_none_of_its_pageviews(quiet, monkeypatch):
    """A failed batch is counted again one pageview at a time: all of it is stored."""
    site, _ = make_site(quiet)
    pixels(quiet, site, [UA, GOOGLEBOT, UA + " a", UA + " b"])
    real = store.save_in

    def fails_in_batches(conn, site, hits, *args, **kwargs):
        if len(hits) > 1:
            raise RuntimeError("disk on fire")
        return real(conn, site, hits, *args, **kwargs)

    monkeypatch.setattr(store, "save_in", fails_in_batches)
    with quiet.app_context():
        assert pending.drain() == 4
    assert stored_paths(quiet) == (["/p0", "/p2", "/p3"], ["/p1"], 3)
    assert query(quiet, "SELECT * FROM failed_hits", drain=False) == []


def test_a_pageview_that_fails_when_classified_is_set_aside_alone(quiet, monkeypatch):
    """Bot detection and browser parsing run in the counting transaction: one that fails
    there is kept in failed_hits, its batch is stored, and a retry stores it."""
    site, _ = make_site(quiet)
    pixels(quiet, site, [UA, UA + " boom", GOOGLEBOT, UA + " b"])
    real = useragents.parse

    def parse(ua):
        if "boom" in ua:
            raise ValueError("no such browser")
        return real(ua)

    with monkeypatch.context() as patch:
        patch.setattr(useragents, "parse", parse)
        with quiet.app_context():
            assert pending.drain() == 3
    assert stored_paths(quiet) == (["/p0", "/p3"], ["/p2"], 2)
    (failed,) = query(quiet, "SELECT error FROM failed_hits", drain=False)
    assert failed[0] == "ValueError: no such browser"
    result = quiet.test_cli_runner().invoke(args=["db", "retry-failed"])
    assert result.exit_code == 0, result.output
    assert stored_paths(quiet) == (["/p0", "/p1", "/p3"], ["/p2"], 3)


@contextlib.contextmanager
def writer_busy(app):
    """Another writer holds the writers' lock (a write transaction left open in another
    thread, with a connection of its own) until the block ends."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        with app.app_context():
            db.write(lambda c: (started.set(), release.wait(5)))

    holder = threading.Thread(target=hold)
    holder.start()
    assert started.wait(10)
    try:
        yield holder
    finally:
        release.set()
        holder.join()


def test_a_writer_that_does_not_wait_is_told_the_lock_is_held(app):
    ran: list[int] = []
    with writer_busy(app) as holder, app.app_context():
        with pytest.raises(db.LockHeld):
            db.write(lambda c: ran.append(1), wait=False)
        assert holder.is_alive()
    assert ran == []
    with app.app_context():
        db.write(lambda c: ran.append(1), wait=False)
    assert ran == [1]


@pytest.mark.sqlite_only("the writers' lock file of SQLite")
def test_the_lock_file_held_by_another_process_is_not_waited_for(app):
    # A lock taken through an open file of its own is what another process's looks like.
    fd = os.open(app.config["DB_PATH"] + "-writelock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with app.app_context(), pytest.raises(db.LockHeld):
            db.write(lambda c: None, wait=False)
    finally:
        os.close(fd)


def test_a_reply_does_not_wait_for_another_writer(app, monkeypatch):
    """Counting after a reply while another process writes would keep the worker (and its
    next clients) waiting: the pageview is left pending, and counted by a later reply."""
    site, _ = make_site(app)
    drainer = app.extensions["goatcounter_pending"]
    with writer_busy(app) as holder:
        drainer.last = 0.0  # due to count
        assert pixel(app, site).status_code == 200
        # Answered and closed while the other writer still holds the lock.
        assert holder.is_alive()
        assert counts(app) == (1, 0)
        assert drainer.not_before > time.monotonic() - 1
    monkeypatch.setattr(drainer, "not_before", 0.0)
    drainer.last = 0.0
    assert pixel(app, site, "/y").status_code == 200
    assert counts(app) == (0, 2)


def background_app(app_config, monkeypatch) -> tuple[Flask, dict, pending.Drainer]:
    """An app whose counting thread runs, but whose idle check won't come within a test:
    what counts is the step after each reply and the counting process's timer."""
    monkeypatch.setattr(pending, "IDLE_CHECK", 60)
    app_config["COUNT_IN_BACKGROUND"] = True
    app = create_app(app_config)
    app.test_client_class = Client
    site, _ = make_site(app)
    return app, site, app.extensions["goatcounter_pending"]


def test_one_process_counts_after_its_replies(app_config, monkeypatch):
    """With background threads, only the holder of the spool's counting lock counts
    after its replies; another process's pageviews wait for it (or for their own
    process's thread, once its traffic stops: not within this test)."""
    monkeypatch.setattr(spool, "LEAD_RETRY", 0.0)
    app, site, drainer = background_app(app_config, monkeypatch)
    where = app.extensions["goatcounter_spool"]
    # Another process holds the lock: an open file of its own is what that looks like.
    os.makedirs(where.directory, exist_ok=True)
    other = os.open(os.path.join(where.directory, spool.COUNTER_LOCK), os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        drainer.last = 0.0
        assert pixel(app, site).status_code == 200
        assert counts(app) == (1, 0)
        assert not drainer.counting
    finally:
        os.close(other)
    # That process is gone: the next reply takes the lock, and counts what waited.
    assert pixel(app, site, "/y").status_code == 200
    assert drainer.counting
    assert counts(app) == (0, 2)


def test_the_counting_process_counts_what_others_answered(app_config, monkeypatch):
    """Pageviews another process answered are counted by the counting process's thread
    within LEAD_TIMER, even when its own replies stop."""
    monkeypatch.setattr(pending, "LEAD_TIMER", 0.1)
    app, site, drainer = background_app(app_config, monkeypatch)
    drainer.last = 0.0
    pixel(app, site)
    assert drainer.counting
    assert counts(app) == (0, 1)
    # A line another worker appended (its own file), with no reply here to count it.
    with app.app_context():
        hit = process(Incoming(path="/other", user_agent=UA, ip="8.8.4.4"),
                      {"collect": 0xFFFF, "collect_regions": ""}, time.time(), None)
        pending.add(site["id"], hit, spool.Spool(app.extensions["goatcounter_spool"].directory))
    assert counts(app) == (1, 1)
    wait_until(lambda: counts(app) == (0, 2), "the other process's pageview counted", 5)

"""The live log (counting/livelog.py): every /count request and every hit of an API batch
leaves an entry with its decision and reason, and what the pipeline made of it; the
newest KEEP per site are kept; readers follow it in arrival order."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from typing import Any

import pytest
from flask import Flask

from goatcounter import clock
from goatcounter.counting import livelog, pending
from tests.conftest import API, UA, make_site

VISITOR = "81.2.69.160"
IGNORED_IP = "203.0.113.9"
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def site(app: Flask) -> dict[str, Any]:
    site, _ = make_site(app, settings={"ignore_ips": IGNORED_IP})
    return site


@pytest.fixture
def token(app: Flask, site: dict[str, Any]) -> str:
    with app.app_context():
        from goatcounter.accounts import tokens, users
        from goatcounter.storage import db

        def run(conn: sqlite3.Connection) -> str:
            user = users.get(conn, 1)
            assert user is not None
            return tokens.create_token(conn, user=user, name="live",
                                       permissions=tokens.PERM_ALL)[0]
        return db.write(run)


@pytest.fixture
def pixel(client, site):
    def get(query: str = "", headers: dict | None = None, ip: str = VISITOR):
        h = {"Host": site["cname"], "User-Agent": UA, **(headers or {})}
        return client.get("/count" + ("?" + query if query else ""), headers=h,
                          environ_base={"REMOTE_ADDR": ip})
    return get


@pytest.fixture
def api(client, site, token) -> API:
    return API(client, token, site["cname"])


def entries(app: Flask, site_id: int | None = None) -> list[dict[str, Any]]:
    """Every entry, oldest first, once this process has written what it noted."""
    with app.app_context():
        from goatcounter.storage import db
        conn = db.get_db()
        pending.drain(conn)
        livelog.of(app).flush(conn)
        return livelog.after(conn, 0, site_id)


def last(app: Flask) -> dict[str, Any]:
    found = entries(app)
    assert found, "no live log entry"
    return found[-1]


def hit(path: str = "/p", **extra: Any) -> dict[str, Any]:
    return {"path": path, "title": "A page", "user_agent": UA, "ip": VISITOR, **extra}


# Each decision, from each endpoint ---------------------------------------------------

def test_a_counted_pageview(app, pixel):
    assert pixel("p=/hello&t=Hello&r=https%3A%2F%2Fexample.com%2Fx&s=1920").status_code == 200
    pixel("p=/other")
    first, second = entries(app)
    assert first["decision"] == "counted" and first["reason"] == ""
    assert first["endpoint"] == "count" and first["path"] == "/hello"
    assert first["title"] == "Hello" and first["ref"] == "example.com/x"
    assert first["browser"] == "Firefox 131" and first["system"] == "Linux"
    assert first["size"] == "desktop" and first["location"] == "GB"
    assert len(first["session"]) == 8 and first["first_visit"] is True
    # Same visitor, same session, another page: a first visit of that page too.
    assert second["session"] == first["session"] and second["first_visit"] is True
    pixel("p=/hello")
    assert last(app)["first_visit"] is False


def test_a_counted_api_hit(app, api):
    assert api.post("/api/v0/count", {"hits": [hit("/api-page", size="390,844,3")]}
                    ).status_code == 202
    entry = last(app)
    assert (entry["endpoint"], entry["decision"], entry["path"]) == ("api", "counted", "/api-page")
    assert entry["size"] == "phone" and entry["first_visit"] is True and entry["session"]


@pytest.mark.parametrize(("ua", "query", "reason"), [
    (CRAWLER, "p=/x", "bot 5: a known crawler (Googlebot)"),
    ("curl/8.5.0", "p=/x", "bot 4: a client library (curl)"),
    ("", "p=/x", "bot 7: no User-Agent header"),
    (UA, "p=/x&b=153", "bot 153: count.js saw a headless browser (navigator.webdriver, b=153)"),
    ("Firefox 12", "p=/x", "bot 7: a user agent shorter than 20 characters"),
])
def test_a_bot_on_the_pixel(app, pixel, ua, query, reason):
    assert pixel(query, headers={"User-Agent": ua}).status_code == 200
    entry = last(app)
    assert (entry["decision"], entry["reason"]) == ("bot", reason)
    assert entry["first_visit"] is None and entry["session"] == ""


def test_a_bot_on_the_pixel_is_logged_when_counted(app, pixel):
    """The pixel answers before telling bots from people: the entry is written by the
    counting step, with what it found, and nothing waits in memory for it."""
    app.extensions["goatcounter_pending"].last = time.monotonic()
    assert pixel("p=/x", headers={"User-Agent": CRAWLER}).status_code == 200
    assert not livelog.of(app).waiting()
    with app.app_context():
        from goatcounter.storage import db
        assert livelog.after(db.get_db(), 0) == []
    entry = last(app)
    assert (entry["decision"], entry["reason"]) == ("bot", "bot 5: a known crawler (Googlebot)")


def test_a_bot_sending_referrer_spam_is_a_bot(app, pixel, refspam_file):
    """Spam is never counted, so its entry is written at once: classified there."""
    pixel("p=/x&r=https%3A%2F%2Fspam-host.example%2F", headers={"User-Agent": CRAWLER})
    entry = last(app)
    assert (entry["decision"], entry["reason"]) == ("bot", "bot 5: a known crawler (Googlebot)")


def test_refused_entries_are_written_while_counting_waits(app, pixel, monkeypatch):
    """A busy worker keeps its pageviews for a bigger batch, but what the live log noted
    is written right after the reply all the same."""
    monkeypatch.setattr(pending, "FULL", 1000)
    drainer = app.extensions["goatcounter_pending"]
    drainer.last = time.monotonic()
    assert pixel("p=/kept").status_code == 200
    assert pixel("p=/x&b=5").status_code == 400
    with app.app_context():
        from goatcounter.storage import db
        conn = db.get_db()
        written = livelog.after(conn, 0)
        assert [(e["path"], e["decision"]) for e in written] == [("/x", "invalid")]
        assert conn.execute("SELECT count(*) FROM hits").fetchone()[0] == 0
    assert drainer.waiting == 1
    assert [(e["path"], e["decision"]) for e in entries(app)] == [
        ("/x", "invalid"), ("/kept", "counted")]


def test_a_bot_on_the_api(app, api):
    api.post("/api/v0/count", {"hits": [hit(user_agent=CRAWLER), hit("/b", bot=7)]})
    crawler, flagged = entries(app)
    assert (crawler["decision"], crawler["reason"]) == ("bot", "bot 5: a known crawler (Googlebot)")
    assert (flagged["decision"], flagged["reason"]) == ("bot", "bot 7: sent as bot=7")


def test_ignored_on_the_pixel(app, pixel, refspam_file):
    assert pixel("p=/x", ip=IGNORED_IP).status_code == 202
    entry = last(app)
    assert (entry["decision"], entry["reason"]) == (
        "ignored", f'ignored because "{IGNORED_IP}" is in the IP ignore list')
    assert entry["path"] == "/x"
    pixel("p=/favicon.ico")
    assert (last(app)["decision"], last(app)["reason"]) == (
        "ignored", "the path /favicon.ico is never counted")
    pixel("p=/x", headers={"Sec-Purpose": "prefetch"})
    assert (last(app)["decision"], last(app)["reason"]) == (
        "ignored", "a prefetch: the visitor may never see the page")
    pixel("p=/x&r=https%3A%2F%2Fspam-host.example%2F")
    entry = last(app)
    assert (entry["decision"], entry["reason"]) == ("ignored", "referrer spam (spam-host.example)")
    assert entry["browser"] == "Firefox 131"


def test_ignored_on_the_api(app, api):
    resp = api.post("/api/v0/count", {"hits": [hit("/a", ip=IGNORED_IP), hit("/favicon.ico")]})
    assert resp.status_code == 202
    ip, favicon = entries(app)
    assert (ip["decision"], ip["reason"], ip["path"]) == (
        "ignored", f'ignored because "{IGNORED_IP}" is in the IP ignore list', "/a")
    assert (favicon["decision"], favicon["reason"]) == (
        "ignored", "the path /favicon.ico is never counted")


def test_a_collect_setting_is_named(app):
    site, token = make_site(app, cname="few.example.com", email="few@example.com",
                            settings={"collect": 2 | 4 | 256})
    API(app.test_client(), token, site["cname"]).post("/api/v0/count", {"hits": [hit()]})
    entry = last(app)
    assert entry["decision"] == "counted"
    assert entry["reason"] == "not collected (site's collect setting): size, location, sessions"
    assert entry["location"] == "" and entry["session"] == ""


@pytest.mark.parametrize(("query", "reason"), [
    ("p=/x&e=maybe", "error decoding parameters: e: invalid boolean 'maybe'"),
    ("p=/x&b=3", "wrong value: b=3"),
    ("p=", "not valid: path: must be set, must be longer than 1 characters."),
    ("p=/" + "x" * 2100, "ignored because path is longer than 2048 bytes (2110 bytes)"),
])
def test_invalid_on_the_pixel(app, pixel, query, reason):
    resp = pixel(query)
    assert resp.status_code == 400
    entry = last(app)
    assert (entry["decision"], entry["reason"]) == ("invalid", reason)
    assert resp.headers["X-Goatcounter"] == reason


def test_invalid_on_the_api(app, api):
    resp = api.post("/api/v0/count",
                    {"hits": [hit(""), hit("/ok"), hit("/s", ip="", user_agent="")]})
    assert resp.status_code == 400
    empty, ok, no_session = entries(app)
    assert (empty["decision"], empty["reason"]) == (
        "invalid", "path: must be set, must be longer than 1 characters.")
    assert ok["decision"] == "counted"
    assert (no_session["decision"], no_session["path"]) == ("invalid", "/s")
    assert no_session["reason"].startswith("session or browser/IP not set")
    # A batch refused whole: an entry for each hit, or one when none could be read.
    api.post("/api/v0/count", {"hits": [hit("/a"), hit("/b")], "filter": ["x"]})
    assert [(e["decision"], e["path"], e["reason"]) for e in entries(app)[3:]] == [
        ("invalid", "/a", "unknown value in Filter: [x]"),
        ("invalid", "/b", "unknown value in Filter: [x]")]
    api.post("/api/v0/count", '{"hits": [')
    entry = last(app)
    assert entry["decision"] == "invalid" and entry["path"] == ""
    assert entry["reason"].startswith("invalid JSON")


def test_ratelimited_on_the_pixel(app_config, tmp_path):
    from goatcounter import create_app
    from tests.conftest import Client
    app_config["RATELIMIT"] = "count:1/60"
    app = create_app(app_config)
    app.test_client_class = Client
    site, _ = make_site(app)
    client = app.test_client()
    statuses = [client.get("/count?p=/r", headers={"Host": site["cname"], "User-Agent": UA},
                           environ_base={"REMOTE_ADDR": VISITOR}).status_code for _ in range(2)]
    assert statuses == [200, 429]
    counted, limited = entries(app)
    assert counted["decision"] == "counted"
    assert limited["decision"] == "ratelimited" and limited["path"] == "/r"
    assert limited["reason"].startswith("rate limited exceeded; try again in ")


def test_ratelimited_on_the_api(app_config):
    from goatcounter import create_app
    from tests.conftest import Client
    app_config["RATELIMIT"] = "api-count:1/60"
    app = create_app(app_config)
    app.test_client_class = Client
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    assert api.post("/api/v0/count", {"hits": [hit()]}).status_code == 202
    assert api.post("/api/v0/count", {"hits": [hit()]}).status_code == 429
    entry = last(app)
    assert (entry["endpoint"], entry["decision"]) == ("api", "ratelimited")
    assert entry["reason"].startswith("rate limited exceeded; try again in ")
    assert entry["reason"].endswith("(the batch was not read)")
    # A made-up token leaves nothing in a site's log.
    before = len(entries(app))
    API(app.test_client(), "nope", site["cname"]).post("/api/v0/count", {"hits": [hit()]})
    assert len(entries(app)) == before


def test_duplicate_on_the_api(app, api):
    headers = {"Idempotency-Key": "batch-1"}
    body = {"hits": [hit("/one"), hit("/two")]}
    assert api.post("/api/v0/count", body, headers=headers).status_code == 202
    replay = api.post("/api/v0/count", body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    found = entries(app)
    assert [(e["decision"], e["path"]) for e in found] == [
        ("counted", "/one"), ("counted", "/two"), ("duplicate", "/one"), ("duplicate", "/two")]
    assert found[-1]["reason"] == ("Idempotency-Key 'batch-1' was accepted before: its first"
                                   " reply is sent again and nothing is counted")


# Keeping and reading -----------------------------------------------------------------

def test_only_the_newest_entries_of_each_site_are_kept(app, api, site, monkeypatch):
    monkeypatch.setattr(livelog, "KEEP", 5)
    monkeypatch.setattr(livelog, "TRIM_EVERY", 1)
    other, other_token = make_site(app, cname="other.example.com", email="o@example.com")
    API(app.test_client(), other_token, other["cname"]).post(
        "/api/v0/count", {"hits": [hit("/theirs")]})
    for n in range(3):
        api.post("/api/v0/count", {"hits": [hit(f"/{n}-{i}") for i in range(3)]})
    ours = entries(app, site["id"])
    assert [e["path"] for e in ours] == ["/1-1", "/1-2", "/2-0", "/2-1", "/2-2"]
    assert [e["path"] for e in entries(app, other["id"])] == ["/theirs"]


def test_long_texts_are_cut(app, api):
    api.post("/api/v0/count", {"hits": [hit("/" + "x" * 1000, title="t" * 1000)]})
    entry = last(app)
    assert len(entry["path"]) == livelog.TEXT and entry["path"].endswith("…")
    assert len(entry["title"]) == livelog.TEXT


def test_off_writes_nothing(app_config):
    from goatcounter import create_app
    from tests.conftest import Client
    app_config["LIVE_LOG"] = False
    app = create_app(app_config)
    app.test_client_class = Client
    site, token = make_site(app)
    client = app.test_client()
    client.get("/count?p=/x", headers={"Host": site["cname"], "User-Agent": UA})
    client.get("/count?p=", headers={"Host": site["cname"], "User-Agent": UA})
    API(client, token, site["cname"]).post("/api/v0/count", {"hits": [hit()]})
    assert entries(app) == []


def test_spool_lines_of_before_still_count(app, site):
    """A spool line written before lines carried their arrival time (nor whether the
    user agent steps were left for counting: the field after it)."""
    line = pending.encode(site["id"], _a_hit()).decode()
    import json
    values = json.loads(line)[:-2]
    _, decoded = pending.decode(json.dumps(values).encode())
    assert decoded.received == decoded.created_at
    assert not decoded.unclassified


def _a_hit():
    from goatcounter.accounts import settings_schema
    from goatcounter.counting.pipeline.process import Incoming, process
    result = process(Incoming(path="/x", user_agent=UA, ip=VISITOR),
                     settings_schema.default_site_settings(), clock.now(), "k")
    assert not isinstance(result, str)
    return result


def test_the_hold_covers_a_counted_pageviews_wait():
    """A counted pageview's entry is written when the counting process counts: after one
    of its replies, up to DRAIN_EVERY after the request, or from its thread, up to
    LEAD_TIMER after it last counted. The tail holds entries longer than either (and
    shows them within a second of the request)."""
    from goatcounter.cli import tail
    from goatcounter.counting import pending
    latest = max(pending.DRAIN_EVERY, pending.LEAD_TIMER)
    assert latest + 0.25 <= livelog.Follower.HOLD
    assert livelog.Follower.HOLD + tail.POLL <= 1.0


def test_follower_gives_entries_in_arrival_order(app, site):
    """Entries that reach the table out of order (two workers) come out in order, each
    once, once they are HOLD seconds old."""
    now = 1_000_000.0
    rows = [livelog.raw_row(site["id"], now + 0.2, "count", "counted", "", path="/second"),
            livelog.raw_row(site["id"], now + 0.1, "count", "counted", "", path="/first")]
    with app.app_context():
        from goatcounter.storage import db
        conn = db.get_db()
        db.write(lambda c: livelog.write(c, rows))
        follow = livelog.Follower(site["id"])
        assert follow.poll(conn, now + 0.3) == []
        assert [e["path"] for e in follow.poll(conn, now + 1)] == ["/first", "/second"]
        late = livelog.raw_row(site["id"], now + 0.15, "count", "counted", "", path="/late")
        db.write(lambda c: livelog.write(c, [late]))
        assert [e["path"] for e in follow.poll(conn, now + 1)] == ["/late"]
        assert follow.poll(conn, now + 6) == []
        assert follow.floor == livelog.newest_id(conn)


@pytest.mark.postgresql
def test_an_entry_that_commits_late_is_not_missed_on_postgresql():
    """A writer that has taken an id and not committed yet holds the next one back (the
    advisory write lock): the follower, reading on from the highest id it has seen, gets
    both, in arrival order."""
    import threading
    import time

    from goatcounter.storage import db
    from tests import engines
    url = engines.separate_database()
    now = clock.now()
    first, second, reader = db.connect(url), db.connect(url), db.connect(url)
    try:
        first.begin(True)
        livelog.write(first, [livelog.raw_row(1, now, "count", "counted", "", path="/slow")])
        quick = livelog.raw_row(1, now + 0.01, "count", "counted", "", path="/quick")
        thread = threading.Thread(target=lambda: db.write(
            lambda c: livelog.write(c, [quick]), second))
        thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not reader.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()[0]:
            time.sleep(0.02)
        follow = livelog.Follower(1)
        # The quick writer waits for the lock, so it has taken no id to be seen yet.
        assert follow.poll(reader, now + 5) == []
        first.commit()
        thread.join(10)
        assert [e["path"] for e in follow.poll(reader, now + 5)] == ["/slow", "/quick"]
    finally:
        for conn in (first, second, reader):
            conn.close()
        engines.drop_database(url)


def test_line_and_json(app, api):
    api.post("/api/v0/count", {"hits": [hit("/x", ref="https://example.com/y")]})
    entry = last(app)
    text = livelog.line(entry)
    assert " site 1 " in text and "counted" in text and "/x" in text
    assert '"A page"' in text and "from example.com/y" in text and "first visit" in text
    shown = livelog.as_json(entry)
    assert {"time", "site", "endpoint", "path", "decision", "reason"} <= shown.keys()
    assert shown["time"].endswith("Z") and len(shown["time"]) == 24
    with contextlib.suppress(KeyError):
        shown["at"]
        raise AssertionError("at is internal")


def test_serve_dev_shows_a_pageview_counted_as_the_tail_starts(app, site, monkeypatch, capsys):
    """The intro tells the developer to send a pageview: one counted before the tail has
    read where the log stands is shown all the same."""
    import sys

    from goatcounter.cli import serve
    from goatcounter.storage import db

    def intro(base: str) -> str:
        db.write(lambda c: livelog.write(c, [livelog.raw_row(
            site["id"], clock.now(), "count", "invalid", "raced", path="/raced")]))
        return "intro"

    monkeypatch.setattr(serve, "_wait_for", lambda server, base: True)
    monkeypatch.setattr(serve, "dev_intro", intro)
    # The test process keeps its own SIGTERM handling.
    monkeypatch.setattr(serve.signal, "signal", lambda *args: None)
    with app.app_context():
        serve.run_dev([sys.executable, "-c", "import time; time.sleep(1.5)"], dict(os.environ),
                      "http://127.0.0.1:1")
    out = capsys.readouterr().out
    assert "intro" in out and "/raced" in out

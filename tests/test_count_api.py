"""POST /api/v0/count (spec 10.3), checked against GoatCounter 2.7.0's recorded replies."""
from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import json
import os
import random
import sqlite3
import threading
import time

import pytest

from goatcounter import clock
from goatcounter.stats import totals
from goatcounter.stats.ranges import Range
from tests import engines, scenario
from tests.conftest import API, assert_error, assert_errors, make_site

RATELIMIT = "api:none,api-count:none"


@pytest.fixture
def golden(app):
    return scenario.setup(app)


def db(app) -> sqlite3.Connection:
    return engines.connect(app)


def stored(app) -> list[dict]:
    """Stored hits with their path, title, referrer and flags, in id order."""
    rows = db(app).execute(
        "SELECT p.path, p.title, p.event, r.ref, r.ref_scheme, h.width, h.location,"
        " h.first_visit, h.created_at, h.session, b.name AS browser, s.name AS system"
        " FROM hits h JOIN paths p ON p.id = h.path_id JOIN refs r ON r.id = h.ref_id"
        " LEFT JOIN browsers b ON b.id = h.browser_id LEFT JOIN systems s ON s.id = h.system_id"
        " ORDER BY h.id").fetchall()
    return [dict(r) for r in rows]


def test_scenario_replies_match_upstream(golden):
    replies = scenario.count_all(golden)
    for resp, name in zip(replies, ("02", "03", "04"), strict=True):
        want = scenario.reply(name)["response"]
        assert resp.status_code == want["status"] == 202
        assert resp.get_data(as_text=True) == '{"status":"ok"}'
        assert resp.headers.get("X-Goatcounter-Filter") == \
            want["headers"].get("X-Goatcounter-Filter")


def test_scenario_stores_what_upstream_stored(app, golden):
    scenario.count_all(golden)
    rows = stored(app)
    want = scenario.export_rows()
    assert len(rows) == len(want) == 54
    sessions: dict[bytes | None, str] = {}
    for got, exp in zip(rows, want, strict=True):
        assert got["path"] == exp["2Path"]
        assert got["title"] == exp["Title"]
        assert str(got["event"]) == exp["Event"]
        assert str(got["first_visit"]) == exp["FirstVisit"], got
        assert clock.rfc3339_seconds(got["created_at"]) == exp["Date"]
        assert f"{got['width'] or 0},0,1" == exp["Screen size"]
        assert got["location"] == exp["Location"]
        # Which rows share a session must match (the ids themselves are random).
        assert sessions.setdefault(got["session"], exp["Session"]) == exp["Session"]
    assert len(set(sessions.values())) == len(sessions) == 17


def test_scenario_counts(app, golden):
    scenario.count_all(golden)
    conn = db(app)
    assert conn.execute("SELECT count(*) FROM paths").fetchone()[0] == 37
    assert conn.execute("SELECT count(*) FROM bots").fetchone()[0] == 5
    assert tuple(conn.execute("SELECT sum(pageviews), sum(total), sum(events)"
                              " FROM site_counts").fetchone()) == (54, 44, 6)
    # The favicon is not counted, but its path exists (as upstream).
    assert conn.execute("SELECT title FROM paths WHERE path = '/favicon.ico'").fetchone()[0] == ""
    assert conn.execute("SELECT first_hit_at FROM sites").fetchone()[0] == "2026-11-19T20:00:00Z"
    assert [r[0] for r in conn.execute("SELECT name FROM campaigns ORDER BY id")] == \
        ["launch", "Winter-Sale"]


def test_aggregates_sum_to_the_stored_hits(app, golden):
    scenario.count_all(golden)
    conn = db(app)
    hits, visits = conn.execute("SELECT count(*), sum(first_visit) FROM hits").fetchone()
    assert tuple(conn.execute("SELECT sum(pageviews), sum(total) FROM hit_counts").fetchone()) \
        == (hits, visits)
    assert conn.execute("SELECT sum(total) FROM path_days").fetchone()[0] == visits
    for table in ("ref_counts", "ref_hours", "ref_days", "browser_days", "browser_stats",
                  "system_days", "system_stats", "location_days", "location_stats",
                  "size_days", "size_stats", "language_days", "language_stats"):
        assert conn.execute(f"SELECT sum(total) FROM {table}").fetchone()[0] == visits, table


@pytest.mark.parametrize("name", ["60", "63", "64", "66", "67", "68", "70", "72"])
def test_error_replies_match_upstream(app, golden, name):
    rec = scenario.reply(name)
    req, want = rec["request"], rec["response"]
    headers = {k: v for k, v in req["headers"].items() if k not in ("Host", "Content-Length")}
    if "Authorization" in headers:
        headers["Authorization"] = f"Bearer {golden.token}"
    api = API(golden.client, None, golden.host)
    body = req["body"] if req.get("body") is not None else req["body_raw"]
    resp = api.client.post(req["path"], data=body if isinstance(body, str) else json.dumps(body),
                           headers={**headers, "Host": golden.host})
    assert resp.status_code == want["status"]
    if name == "70":
        # Go's type name in upstream's message means nothing to a client; ours names the field.
        assert resp.get_json() == {"error": "invalid JSON: hits[0].event: unknown value: null"}
    else:
        assert resp.get_json() == want["body"]


def test_per_hit_errors_keep_the_valid_hits(app, golden):
    rec = scenario.reply("72")
    resp = golden.post("/api/v0/count", rec["request"]["body"])
    assert_errors(resp, 400, rec["response"]["body"]["errors"])
    assert [r["path"] for r in stored(app)] == ["/partial-ok"]


@pytest.mark.parametrize("name", ["65", "69"])
def test_language_and_size_array_are_accepted(app, golden, name):
    # DECISIONS: `language` is a hit field ([main]); size may be an array.
    resp = golden.post("/api/v0/count", scenario.reply(name)["request"]["body"])
    assert resp.status_code == 202
    assert [r["path"] for r in stored(app)] == ["/x"]


def test_unknown_filter_is_a_400(app, golden):
    # Upstream answers 200 with an error body; an error never comes with a 2xx here.
    resp = golden.post("/api/v0/count", scenario.reply("71")["request"]["body"])
    assert_error(resp, 400, "unknown value in Filter: [ua]")
    assert stored(app) == []


def test_500_hits_are_accepted(app, golden):
    hits = [{"path": f"/bulk-{i}", "created_at": "2026-11-22T00:00:00Z"} for i in range(500)]
    resp = golden.post("/api/v0/count", {"no_sessions": True, "hits": hits})
    assert resp.status_code == 202
    assert len(stored(app)) == 500


@pytest.mark.parametrize(("size", "width"), [
    ("1920,1080,2", 1920), ("1366", 1366), (1280, 1280), ([800, 600, 1], 800), (None, None),
])
def test_size_forms(app, golden, size, width):
    resp = golden.post("/api/v0/count", {"no_sessions": True,
                                         "hits": [{"path": "/s", "size": size}]})
    assert resp.status_code == 202
    assert stored(app)[0]["width"] == (width or 0)


@pytest.mark.parametrize("hit", [
    {"path": 5}, {"path": "/x", "event": None}, {"path": "/x", "size": "wide"},
    {"path": "/x", "created_at": "yesterday"}, {"path": "/x", "bot": "yes"},
    {"path": "/x", "title": ["a"]}, {"path": "/x", "unknown": 1}, "not an object",
])
def test_bad_hit_fails_the_whole_request_and_stores_nothing(app, golden, hit):
    resp = golden.post("/api/v0/count", {"no_sessions": True, "hits": [{"path": "/ok"}, hit]})
    assert_error(resp, 400)
    assert stored(app) == []


@pytest.mark.parametrize("body", [
    '{"hits": [', "[]", '{"hits": {}}', '{"no_sessions": "x", "hits": []}',
    '{"filter": "ip", "hits": [{"path": "/x"}]}',
])
def test_malformed_bodies(app, golden, body):
    assert_error(golden.post("/api/v0/count", body), 400)
    assert stored(app) == []


def test_count_needs_the_count_permission(app, golden):
    _site, token = make_site(app, cname="other.example.com", perms=64, email="o@example.com")
    api = API(golden.client, token, "other.example.com")
    assert_error(api.post("/api/v0/count", {"no_sessions": True, "hits": [{"path": "/x"}]}),
                 403, "requires 'count' permissions")


def test_created_at_in_the_past_and_offsets(app, golden):
    resp = golden.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": "/old", "created_at": "2019-06-19T00:00:00Z"},
        {"path": "/tz", "created_at": "2026-11-21T10:30:00+01:00"},
    ]})
    assert resp.status_code == 202
    dates = [clock.rfc3339_seconds(r["created_at"]) for r in stored(app)]
    assert dates == ["2019-06-19T00:00:00Z", "2026-11-21T09:30:00Z"]


def test_no_sessions_share_one_site_wide_session(app, golden):
    golden.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": "/a"}, {"path": "/b"}, {"path": "/a"}]})
    rows = stored(app)
    assert [r["first_visit"] for r in rows] == [1, 1, 0]
    assert len({r["session"] for r in rows}) == 1


def test_session_ends_after_8_hours_without_hits(app, golden):
    body = {"hits": [{"path": "/a", "session": "v1"}]}
    golden.post("/api/v0/count", body)
    clock.advance(7 * 3600)
    golden.post("/api/v0/count", body)
    clock.advance(8 * 3600 + 1)
    golden.post("/api/v0/count", body)
    rows = stored(app)
    assert [r["first_visit"] for r in rows] == [1, 0, 1]
    assert rows[0]["session"] == rows[1]["session"] != rows[2]["session"]


def test_session_survives_the_daily_salt_change(app, golden):
    clock.freeze(scenario.RECORDED_AT.replace(hour=23, minute=50))
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "v1"}]})
    clock.advance(20 * 60)
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "v1"}]})
    rows = stored(app)
    assert [r["first_visit"] for r in rows] == [1, 0]
    assert rows[0]["session"] == rows[1]["session"]


def test_session_keys_are_not_stored(app, golden):
    ua = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "secret-visitor-id"},
                                           {"path": "/b", "user_agent": ua, "ip": "81.2.69.160"}]})
    dump = engines.dump(db(app))
    for text in ("secret-visitor-id", "81.2.69.160", "Firefox/131.0"):
        assert text not in dump


def test_ignore_ips_filter_and_filter_off(app, golden):
    hit = {"path": "/i", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/1.0",
           "ip": "203.0.113.7"}
    resp = golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "x"}, hit]})
    assert resp.status_code == 202
    assert resp.headers["X-Goatcounter-Filter"] == "1"
    resp = golden.post("/api/v0/count", {"filter": [], "hits": [hit]})
    assert "X-Goatcounter-Filter" not in resp.headers
    assert [r["path"] for r in stored(app)] == ["/a", "/i"]


# Retries ---------------------------------------------------------------------------

def test_idempotent_retry_records_nothing_new(app, golden):
    body = {"no_sessions": True, "hits": [{"path": "/a"}, {"path": "/b"}]}
    first = golden.post("/api/v0/count", body, headers={"Idempotency-Key": "batch-1"})
    again = golden.post("/api/v0/count", body, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 202
    assert first.get_data() == again.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stored(app)) == 2
    golden.post("/api/v0/count", body, headers={"Idempotency-Key": "batch-2"})
    assert len(stored(app)) == 4


def test_idempotent_retry_of_a_partly_failed_batch(app, golden):
    body = {"no_sessions": True, "hits": [{"path": "/a"}, {"path": ""}]}
    first = golden.post("/api/v0/count", body, headers={"Idempotency-Key": "k"})
    again = golden.post("/api/v0/count", body, headers={"Idempotency-Key": "k"})
    assert first.status_code == again.status_code == 400
    assert first.get_json() == again.get_json()
    assert len(stored(app)) == 1


@pytest.mark.sqlite_only("holds two SQLite connections at a traced moment; on PostgreSQL"
                        " the writers' advisory lock does the same, and test_two_hosts retries"
                        " one key on two servers")
def test_concurrent_retries_of_one_key_count_once(app, golden):
    """Two requests with one key that both find no saved reply (neither has committed
    yet) still count once: the key is looked up again inside the writing transaction."""
    golden.get("/api/v0/me")  # the token's last use is written now, not while we wait
    lookups: list[str] = []
    pool = app.extensions["goatcounter_db"]
    traced = [pool.get(), pool.get()]
    for conn in traced:
        conn.set_trace_callback(lambda sql: lookups.append(sql)
                                if "FROM idempotency_keys" in sql else None)
        pool.put(conn)
    body = {"no_sessions": True, "hits": [{"path": "/a"}]}
    replies: list = []

    def send() -> None:
        api = API(app.test_client(), golden.token, golden.host)
        replies.append(api.post("/api/v0/count", body, headers={"Idempotency-Key": "k"}))

    # Hold the writers' lock, so that both requests look for the key before either
    # can store anything.
    fd = os.open(app.config["DB_PATH"] + "-writelock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threads = [threading.Thread(target=send) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(lookups) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(lookups) == 2, lookups
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        for t in threads:
            t.join(60)
    for conn in traced:
        conn.set_trace_callback(None)
    assert [r.status_code for r in replies] == [202, 202]
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in replies) == ["", "true"]
    assert len(stored(app)) == 1


def test_idempotency_keys_expire_after_a_day(app, golden):
    body = {"no_sessions": True, "hits": [{"path": "/a"}]}
    golden.post("/api/v0/count", body, headers={"Idempotency-Key": "k"})
    clock.advance(24 * 3600 + 1)
    resp = golden.post("/api/v0/count", body, headers={"Idempotency-Key": "k"})
    assert "Idempotent-Replayed" not in resp.headers
    assert len(stored(app)) == 2


def test_idempotency_keys_are_per_site(app, golden):
    _, token = make_site(app, cname="two.example.com", email="t@example.com")
    other = API(golden.client, token, "two.example.com")
    body = {"no_sessions": True, "hits": [{"path": "/a"}]}
    golden.post("/api/v0/count", body, headers={"Idempotency-Key": "same"})
    resp = other.post("/api/v0/count", body, headers={"Idempotency-Key": "same"})
    assert "Idempotent-Replayed" not in resp.headers
    assert len(stored(app)) == 2


def test_overlong_idempotency_key(app, golden):
    resp = golden.post("/api/v0/count", {"no_sessions": True, "hits": [{"path": "/a"}]},
                       headers={"Idempotency-Key": "k" * 300})
    assert_error(resp, 400)
    assert stored(app) == []


def first_hit_at(app) -> str:
    return db(app).execute("SELECT first_hit_at FROM sites").fetchone()[0]


def test_an_older_hit_in_a_later_batch_moves_first_hit_at_back(app, golden):
    def count(at: str) -> None:
        assert golden.post("/api/v0/count", {"no_sessions": True, "hits": [
            {"path": "/a", "created_at": at}]}).status_code == 202

    count("2026-11-20T08:00:00Z")
    assert first_hit_at(app) == "2026-11-19T20:00:00Z"
    count("2026-11-18T08:00:00Z")
    assert first_hit_at(app) == "2026-11-17T20:00:00Z"
    count("2026-11-25T08:00:00Z")
    count("2026-11-17T20:00:00Z")
    assert first_hit_at(app) == "2026-11-17T20:00:00Z"
    assert golden.get("/api/v0/sites").get_json()["sites"][0]["first_hit_at"] \
        == "2026-11-17T20:00:00Z"


def test_browser_and_system_are_stored_as_themselves(app, golden):
    """Combinations that give browsers and systems different ids (Firefox is browser 1
    on both Linux, system 1, and Windows, system 2)."""
    win = "Windows NT 10.0; Win64; x64"
    uas = ["Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
           f"Mozilla/5.0 ({win}; rv:131.0) Gecko/20100101 Firefox/131.0",
           f"Mozilla/5.0 ({win}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
           " Safari/537.36",
           "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
           " Chrome/131.0.0.0 Safari/537.36"]
    hits = [{"path": f"/{i}", "user_agent": ua} for i, ua in enumerate(uas)]
    assert golden.post("/api/v0/count", {"no_sessions": True, "hits": hits}).status_code == 202
    assert [(r["browser"], r["system"]) for r in stored(app)] == [
        ("Firefox", "Linux"), ("Firefox", "Windows"), ("Chrome", "Windows"),
        ("Chrome", "Linux")]
    q = "start=2026-11-26&end=2026-11-26"
    browsers = golden.get(f"/api/v0/stats/browsers?{q}").get_json()["stats"]
    systems = golden.get(f"/api/v0/stats/systems?{q}").get_json()["stats"]
    assert sorted((s["name"], s["count"]) for s in browsers) == [("Chrome", 2), ("Firefox", 2)]
    assert sorted((s["name"], s["count"]) for s in systems) == [("Linux", 2), ("Windows", 2)]


def test_referrer_spam_is_not_stored(app, golden, refspam_file):
    """Hits from the built-in list's hosts and from GOATCOUNTER_REFSPAM_FILE's are
    accepted and dropped; so is a campaign whose source is a spam host."""
    hits = [{"path": "/a", "ref": "https://0n-line.tv/x"},
            {"path": "/b", "ref": "https://www.spam-host.example/"},
            {"path": "/c", "query": "utm_source=https://spam-host.example/"},
            {"path": "/d", "ref": "https://example.com/"}]
    assert golden.post("/api/v0/count", {"no_sessions": True, "hits": hits}).status_code == 202
    assert [(r["path"], r["ref"]) for r in stored(app)] == [("/d", "example.com")]


def test_site_shows_received_data_right_after_counting(app, golden):
    golden.get("/api/v0/sites")
    golden.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": "/a", "created_at": "2026-11-20T08:00:00Z"}]})
    site = golden.get("/api/v0/sites").get_json()["sites"][0]
    assert site["received_data"] is True
    assert site["first_hit_at"] == "2026-11-19T20:00:00Z"


def test_new_sessions_sort_by_the_second_they_began(app, golden):
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "s1"}]})
    clock.advance(2)
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "s2"},
                                           {"path": "/b", "session": "s2"},
                                           {"path": "/b", "session": "s2"}]})
    rows = stored(app)
    assert rows[0]["session"] < rows[1]["session"]
    assert [r["first_visit"] for r in rows] == [1, 1, 1, 0]


def test_new_sessions_of_one_second_are_adjacent():
    """Within a process and a second, new ids count up after their second: the rows keyed
    by them are added side by side, and no two share visitor_days' first 8 bytes."""
    from goatcounter.counting import sessions
    ids = [sessions.new_id(1_800_000_000) for _ in range(1000)]
    heads = [int.from_bytes(i[:8], "big") for i in ids]
    assert all(i[:4] == (1_800_000_000).to_bytes(4, "big") for i in ids)
    assert all((b - a) % 2**32 == 1 for a, b in itertools.pairwise(heads))
    assert len({i[8:] for i in ids}) == 1000
    # The next second's ids start afresh, at a random count.
    later = [int.from_bytes(sessions.new_id(1_800_000_001)[:8], "big") for _ in range(3)]
    assert all(h >> 32 == 1_800_000_001 for h in later)
    assert all((b - a) % 2**32 == 1 for a, b in itertools.pairwise(later))


def test_a_new_session_over_several_days_in_one_batch(app, golden):
    """Its first day has no earlier one; its later days point back to it, as if they
    came in later batches."""
    clock.freeze(scenario.RECORDED_AT)
    days = ["2026-11-20T10:00:00Z", "2026-11-22T10:00:00Z", "2026-11-21T10:00:00Z"]
    golden.post("/api/v0/count", {"hits": [{"path": f"/{i}", "session": "many",
                                            "created_at": d} for i, d in enumerate(days)]})
    golden.post("/api/v0/count", {"hits": [{"path": "/x", "session": "other",
                                            "created_at": days[1]}]})
    rows = db(app).execute("SELECT day, prev FROM visitor_days ORDER BY session = ("
                           "SELECT session FROM visitor_days GROUP BY session"
                           " HAVING count(*) = 1), day").fetchall()
    day = [clock.parse_rfc3339(d).timestamp() // 86400 * 86400 for d in sorted(days)]
    assert [tuple(r) for r in rows] == [(day[0], None), (day[1], day[0]), (day[2], day[1]),
                                        (day[2], None)]


def test_visitor_prevs_count_the_rows_of_visitor_days(app, golden):
    clock.freeze(scenario.RECORDED_AT)
    days = ["2026-11-20T10:00:00Z", "2026-11-24T10:00:00Z", "2026-11-22T10:00:00Z",
            "2026-11-21T10:00:00Z", "2026-11-24T11:00:00Z"]
    for i, d in enumerate(days):  # days filled in out of order move the next day's prev
        golden.post("/api/v0/count", {"hits": [
            {"path": f"/{i}", "session": "back", "created_at": d},
            {"path": "/n", "session": f"new{i}", "created_at": d}]})
    golden.post("/api/v0/count", {"hits": [{"path": "/m", "session": "many", "created_at": d}
                                           for d in days]})
    conn = db(app)
    want = conn.execute("SELECT site_id, day, coalesce(prev, 0), count(*) FROM visitor_days"
                        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
    got = conn.execute("SELECT site_id, day, prev, total FROM visitor_prevs WHERE total != 0"
                       " ORDER BY 1, 2, 3").fetchall()
    assert [tuple(r) for r in got] == [tuple(r) for r in want]
    assert len(want) > 5


def test_sessions_made_in_the_batch_of_their_hits(app, golden):
    """A session made in the same transaction as its hits: one id per key, first visits
    per path within the batch, and later batches (and an expired key) find the right one."""
    golden.post("/api/v0/count", {"hits": [{"path": "/old", "session": "old"}]})
    clock.advance(60)
    began = int(clock.now())
    golden.post("/api/v0/count", {"hits": [
        {"path": "/a", "session": "s1"}, {"path": "/a", "session": "s1"},
        {"path": "/b", "session": "s1"}, {"path": "/a", "session": "s2"},
        {"path": "/old", "session": "old"}, {"path": "/new", "session": "old"}]})
    clock.advance(60)
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "s1"},
                                           {"path": "/c", "session": "s2"}]})
    clock.advance(9 * 3600)  # past SESSION_HOURS: a new session for the same key
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "s1"},
                                           {"path": "/a", "session": "s1"}]})
    rows = stored(app)
    ids = [bytes(r["session"]) for r in rows]
    assert [r["first_visit"] for r in rows] == [1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    old, s1, s2, later = ids[0], ids[1], ids[4], ids[9]
    assert ids == [old, s1, s1, s1, s2, old, old, s1, s2, later, later]
    assert len({old, s1, s2, later}) == 4
    # New ids begin with the second their session began.
    assert int.from_bytes(s1[:4], "big") == int.from_bytes(s2[:4], "big") == began
    assert int.from_bytes(later[:4], "big") == began + 60 + 9 * 3600
    # The expired key's row went to its new session, and its old paths with it.
    assert db(app).execute("SELECT count(*) FROM session_paths").fetchone()[0] == 5


def test_unique_visitors_are_the_sessions_of_the_hits(app, golden):
    """visitor_prevs gives what a count of the sessions with a first visit among the
    range's hits gives (a session is a visitor of the days it first saw a path), and what
    the count over visitor_days gave: for ranges of every length, with days sent out of
    order, sessions spanning days and batches, and sessions that expire."""
    rnd = random.Random(5)
    day0 = int(dt.datetime(2026, 10, 20, tzinfo=dt.UTC).timestamp())
    for _ in range(30):
        hits = [{"path": f"/{rnd.randrange(5)}", "session": f"k{rnd.randrange(40)}",
                 "created_at": iso(day0 + rnd.randrange(30 * 86400))}
                for _ in range(rnd.randrange(1, 30))]
        assert golden.post("/api/v0/count", {"hits": hits}).status_code == 202
        if rnd.random() < 0.2:
            clock.advance(9 * 3600)
    conn = db(app)
    site_id = conn.execute("SELECT id FROM sites").fetchone()[0]
    assert conn.execute("SELECT count(DISTINCT session) FROM hits").fetchone()[0] > 40
    checked = 0
    for first in range(0, 30, 2):
        for last in range(first, 31, 3):
            d0, d1 = day0 + first * 86400, day0 + last * 86400
            args = {"site": site_id, "d0": d0, "d1": d1, "end": d1 + 86400}
            want = conn.execute(
                "SELECT count(DISTINCT session) FROM hits WHERE site_id = :site"
                " AND first_visit = 1 AND created_at >= :d0 AND created_at < :end",
                args).fetchone()[0]
            before = conn.execute(
                "SELECT count(*) FROM visitor_days WHERE site_id = :site AND day >= :d0"
                " AND day <= :d1 AND (prev IS NULL OR prev < :d0)", args).fetchone()[0]
            got = totals.visitors(conn, site_id, Range(d0, d1 + 86399))
            assert (got, before) == (want, want), (first, last)
            checked += want > 0
    assert checked > 50


def test_sessions_are_shared_by_the_processes_of_one_database(app, app_config, golden):
    """Every process finds sessions in a map of its own, brought up to date from the rows
    the others added: a visit goes on whichever process counts its next hit."""
    from goatcounter import create_app
    from tests.conftest import Client
    other = create_app(app_config)
    other.test_client_class = Client
    second = API(other.test_client(), golden.token, golden.host)
    try:
        golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "v"}]})
        clock.advance(5 * 3600)
        second.post("/api/v0/count", {"hits": [{"path": "/a", "session": "v"},
                                               {"path": "/b", "session": "v"}]})
        # 10 hours after the first process saw the visitor, 5 after the other did.
        clock.advance(5 * 3600)
        golden.post("/api/v0/count", {"hits": [{"path": "/b", "session": "v"}]})
        clock.advance(9 * 3600)
        second.post("/api/v0/count", {"hits": [{"path": "/b", "session": "v"}]})
    finally:
        if other.config.get("DB_URL"):
            other.extensions["goatcounter_db"].close()
    rows = stored(app)
    assert [r["first_visit"] for r in rows] == [1, 0, 1, 0, 1]
    assert len({bytes(r["session"]) for r in rows[:4]}) == 1
    assert rows[4]["session"] != rows[0]["session"]
    conn = db(app)
    assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
    assert bytes(conn.execute("SELECT session FROM sessions").fetchone()[0]) == \
        bytes(rows[4]["session"])


def test_a_session_of_a_rolled_back_batch_is_never_found(app, golden, monkeypatch):
    """The sessions a transaction made join the process's map only once it committed."""
    from goatcounter.counting import aggregates, sessions
    made = iter(range(1, 100))
    monkeypatch.setattr(sessions, "new_id",
                        lambda now: (now & 0xFFFFFFFF).to_bytes(4, "big")
                        + next(made).to_bytes(12, "big"))
    add = aggregates.add
    failures = iter([True])

    def fail_once(*args, **kwargs):
        if next(failures, False):
            raise RuntimeError("the disk is full")
        return add(*args, **kwargs)

    monkeypatch.setattr(aggregates, "add", fail_once)
    body = {"hits": [{"path": "/a", "session": "v"}]}
    assert golden.post("/api/v0/count", body).status_code == 500
    golden.post("/api/v0/count", body)
    golden.post("/api/v0/count", body)
    rows = stored(app)
    assert [r["first_visit"] for r in rows] == [1, 0]
    assert [int.from_bytes(bytes(r["session"])[4:], "big") for r in rows] == [2, 2]
    assert db(app).execute("SELECT count(*) FROM sessions").fetchone()[0] == 1


def test_sessions_emptied_under_a_running_server_are_read_afresh(app, golden):
    """Ids only grow; when the table's newest id is below what a process has read (the
    table was emptied, or restored from a backup), its map is read afresh."""
    body = {"hits": [{"path": "/a", "session": "v"}]}
    golden.post("/api/v0/count", body)
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": f"w{i}"}
                                           for i in range(5)]})
    conn = db(app)
    if engines.ENGINE == "postgresql":
        conn.execute("TRUNCATE sessions, session_paths RESTART IDENTITY")
    else:
        conn.execute("DELETE FROM sessions")
        conn.execute("DELETE FROM session_paths")
        conn.execute("DELETE FROM sqlite_sequence WHERE name = 'sessions'")
    conn.commit()
    golden.post("/api/v0/count", body)
    golden.post("/api/v0/count", body)
    rows = stored(app)
    assert [r["first_visit"] for r in rows] == [1] * 7 + [0]
    assert rows[6]["session"] == rows[7]["session"] != rows[0]["session"]


def test_migration_0025_keeps_the_sessions_in_the_order_they_were_seen(tmp_path):
    from goatcounter.storage import db as storage
    conn = storage.connect(str(tmp_path / "old.sqlite3"))
    migrations = dict(storage._migrations())
    for name, script in storage._migrations():
        if name == "0025_sessions_in_order":
            break
        for stmt in storage._statements(script):
            conn.execute(stmt)
    rows = [(b"k2", 1, b"s2", 200), (b"k1", 1, b"s1", 300), (b"k3", 2, b"s3", 100)]
    conn.executemany("INSERT INTO sessions (key, site_id, session, last_seen)"
                     " VALUES (?, ?, ?, ?)", rows)
    for stmt in storage._statements(migrations["0025_sessions_in_order"]):
        conn.execute(stmt)
    assert [tuple(r) for r in conn.execute("SELECT * FROM sessions ORDER BY id")] == [
        (1, b"k3", 2, b"s3", 100), (2, b"k2", 1, b"s2", 200), (3, b"k1", 1, b"s1", 300)]
    conn.execute("DELETE FROM sessions")
    conn.execute("INSERT INTO sessions (key, site_id, session, last_seen) VALUES"
                 " (x'00', 1, x'00', 400)")
    # Ids keep growing after every row went.
    assert conn.execute("SELECT id FROM sessions").fetchone()[0] == 4
    conn.close()


def iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_two_new_sessions_sharing_a_visitor_key_recount_their_day(app, golden, monkeypatch):
    """visitor_days keeps a session's first 8 bytes: two new sessions that share them are
    one row there, and visitor_prevs is counted afresh for the day so it still matches."""
    from goatcounter.counting import sessions
    made = iter(range(1, 100))
    monkeypatch.setattr(sessions, "new_id",
                        lambda now: (now & 0xFFFFFFFF).to_bytes(4, "big") + bytes(4)
                        + next(made).to_bytes(8, "big"))
    # In one batch they are one (day, visitor) pair already; across batches the second
    # finds the first's row.
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "one"},
                                           {"path": "/a", "session": "two"}]})
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "three"}]})
    conn = db(app)
    assert conn.execute("SELECT count(DISTINCT session) FROM hits").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM visitor_days").fetchone()[0] == 1
    assert [tuple(r) for r in conn.execute(
        "SELECT prev, total FROM visitor_prevs WHERE total != 0")] == [(0, 1)]

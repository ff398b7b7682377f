"""The stats API (spec 10.8 to 10.13, 11.5 to 11.7), compared field by field with the real
GoatCounter 2.7.0 replies in tests/fixtures for the hits in tests/fixtures/hits.json, and
with numbers computed here from the stored hits for ranges, time zones and filters the
fixtures don't cover."""
from __future__ import annotations

import copy
import datetime as dt
import json
import random
import re
import sqlite3
import zoneinfo
from collections import Counter
from pathlib import Path
from typing import Any

import openapi_spec_validator
import pytest
from flask import Flask
from flask.testing import FlaskClient

from goatcounter import clock, create_app
from goatcounter.accounts import sites, tokens
from goatcounter.counting import aggregates
from goatcounter.counting.pipeline.process import Hit
from goatcounter.stats import hitlist, ranges, render
from goatcounter.stats.hitlist import month_parts
from goatcounter.storage import db
from tests import engines, scenario
from tests.conftest import API, assert_error, assert_errors, make_site
from tests.scenario import ORACLE_TOKEN

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
SETTINGS = {"collect": 446, "ignore_ips": "203.0.113.7"}
R = "start=2026-11-19&end=2026-11-25"
NO_LIMITS = "api:none,api-count:none,export:none,count:none,auth:none"


def reply(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "replies" / f"{name}.json").read_text(encoding="utf-8"))


def new_app(tmp: Path, extra: dict[str, Any] | None = None) -> Flask:
    return create_app({"INSTANCE": str(tmp), "TESTING": True, "SECRET_KEY": "test",
                       "RATELIMIT": NO_LIMITS, "COUNT_IN_BACKGROUND": False,
                       **(extra or {})})


def send(client: FlaskClient, req: dict[str, Any]):
    """Send a recorded request as it was recorded."""
    headers = {k: v for k, v in req["headers"].items() if k != "Content-Length"}
    data = None if req.get("body") is None else json.dumps(req["body"])
    return client.open(req["path"], method=req["method"], headers=headers, data=data)


def count_scenario(client: FlaskClient) -> None:
    scenario = json.loads((FIXTURES / "hits.json").read_text(encoding="utf-8"))
    for req in scenario["requests"]:
        req = dict(req, headers={"Host": "127.0.0.1:8084", "Content-Type": "application/json",
                                 "Authorization": f"Bearer {ORACLE_TOKEN}"})
        assert send(client, req).status_code == 202


@pytest.fixture(scope="module")
def oracle_app(tmp_path_factory) -> Flask:
    """The recorded scenario's hits, counted at the recording's time (read-only)."""
    app = new_app(tmp_path_factory.mktemp("oracle"), engines.own_database())
    scenario.oracle_site(app)
    clock.freeze(RECORDED)
    try:
        count_scenario(app.test_client())
    finally:
        clock.reset()
    return app


@pytest.fixture
def oracle(oracle_app) -> FlaskClient:
    clock.freeze(RECORDED)
    return oracle_app.test_client()


def replay(client: FlaskClient, name: str):
    return send(client, reply(name)["request"])


def with_blocks(stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Day entries with `weekly` (7-day blocks from the range's first day) and `monthly`
    (each calendar month's run of days), left out when 0 (spec 11.6)."""
    out = copy.deepcopy(stats)
    for start in range(0, len(out), 7):
        week = sum(e["daily"] for e in out[start:start + 7])
        if week:
            out[start]["weekly"] = week
    i = 0
    while i < len(out):
        j = i
        while j < len(out) and out[j]["day"][:7] == out[i]["day"][:7]:
            j += 1
        month = sum(e["daily"] for e in out[i:j])
        if month:
            out[i]["monthly"] = month
        i = j
    return out


def utc(text: str) -> int:
    """Epoch seconds of a UTC date (its midnight) or time: expected values are written
    this way, never with the functions under test."""
    return int(dt.datetime.fromisoformat(text.replace("Z", "")).replace(
        tzinfo=dt.UTC).timestamp())


def sql(app: Flask, query: str, args: Any = ()) -> list[tuple]:
    with app.app_context():
        return [tuple(r) for r in db.get_db().execute(query, args).fetchall()]


def stored_visitors(app: Flask, first_day: str, last_day: str) -> int:
    """Unique visitors counted from the stored hits: sessions of first visits on those
    UTC days, each once."""
    d0, d1 = utc(first_day), utc(last_day)
    rows = sql(app, "SELECT count(DISTINCT session),"
                    " sum(CASE WHEN session IS NULL THEN 1 ELSE 0 END) FROM hits"
                    " WHERE first_visit = 1 AND created_at >= ? AND created_at < ?",
               (d0, d1 + 86400))
    return rows[0][0] + (rows[0][1] or 0)


# Replies equal to GoatCounter 2.7.0's ----------------------------------------------------

SAME_AS_UPSTREAM = [
    "06-paths", "07-paths-limit-5", "08-paths-limit-5-after-5", "19-paths-limit-200",
    "22-stats-hits-path-by-name-uppercase", "25-stats-hits-refs-about",
    "29-stats-locations", "30-stats-sizes", "31-stats-campaigns", "33-stats-languages",
    "35-stats-locations-include-path", "36-stats-browsers-detail-firefox",
    "38-stats-systems-detail-windows", "39-stats-systems-detail-ios",
    "41-stats-sizes-detail-desktop", "42-stats-sizes-detail-phone",
    "43-stats-sizes-detail-unknown", "44-stats-campaigns-detail",
    "45-stats-toprefs-detail-newsletter", "46-stats-toprefs-detail-url-encoded",
    "73-err-stats-invalid-page", "74-err-stats-invalid-page-no-auth",
    "75-err-stats-languages-detail", "76-err-stats-hits-non-numeric-path-id",
    "77-stats-hits-refs-unknown-path-id", "78-err-stats-hits-limit-abc",
    "79-err-stats-hits-unknown-param", "80-err-stats-hits-bad-exclude",
    "81-err-stats-total-bad-date",
]


@pytest.mark.parametrize("name", SAME_AS_UPSTREAM)
def test_replies_equal_upstream(oracle, name):
    resp = replay(oracle, name)
    want = reply(name)["response"]
    assert resp.status_code == want["status"]
    # Upstream sends errors as text/plain (DECISIONS: error bodies).
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.get_json() == want["body"]


TOTALS = ["09-stats-total", "10-stats-total-default-range", "11-stats-total-one-day",
          "12-stats-total-one-day-full", "23-stats-total-include-paths"]


@pytest.mark.parametrize("name", TOTALS)
def test_totals_equal_upstream_plus_blocks_and_visitors(oracle, oracle_app, name):
    resp = replay(oracle, name)
    want = copy.deepcopy(reply(name)["response"]["body"])
    # DECISIONS: weekly/monthly in day entries; site-wide unique visitors.
    want["stats"] = with_blocks(want["stats"])
    want["visitors"] = stored_visitors(oracle_app, want["stats"][0]["day"],
                                       want["stats"][-1]["day"])
    assert resp.status_code == 200
    assert resp.get_json() == want


def test_visitors_of_the_scenario(oracle):
    # 17 sessions (fixtures README: the export's Session column), all in the range.
    assert oracle.get(f"/api/v0/stats/total?{R}", headers=auth_headers()).get_json()[
        "visitors"] == 17


HITS = ["13-stats-hits", "14-stats-hits-limit-5", "15-stats-hits-daily", "17-stats-hits-page-2",
        "18-stats-hits-page-3", "20-stats-hits-include-paths", "21-stats-hits-path-by-name"]


@pytest.mark.parametrize("name", HITS)
def test_hit_lists_equal_upstream_plus_blocks(oracle, name):
    resp = replay(oracle, name)
    want = copy.deepcopy(reply(name)["response"]["body"])
    for h in want["hits"]:
        h["stats"] = with_blocks(h["stats"])  # DECISIONS: weekly/monthly in day entries
    assert resp.status_code == 200
    assert resp.get_json() == want


def test_group_is_accepted(oracle):
    # Reply 16: 2.7.0 has no `group` (400); [main] has (DECISIONS: group accepted).
    resp = replay(oracle, "16-err-stats-hits-group-param")
    assert resp.status_code == 200
    want = copy.deepcopy(reply("14-stats-hits-limit-5")["response"]["body"])
    want["hits"] = want["hits"][:3]
    for h in want["hits"]:
        h["stats"] = with_blocks(h["stats"])
        # One 7-day range: the week's total is the path's count.
        h["max"] = h["count"]
    want["total"] = sum(h["count"] for h in want["hits"])
    assert resp.get_json() == want


@pytest.mark.parametrize(("group", "key"), [("hour", None), ("0", None), ("day", "daily"),
                                            ("1", "daily"), ("week", "weekly"),
                                            ("month", "monthly"), ("3", "monthly")])
def test_group_sets_max(oracle, group, key):
    hits = oracle.get(f"/api/v0/stats/hits?start=2026-11-01&end=2026-12-20&group={group}",
                      headers=auth_headers()).get_json()["hits"]
    for h in hits:
        if key is None:
            want = max(max(e["hourly"]) for e in h["stats"])
        else:
            want = max(e.get(key, 0) for e in h["stats"])
        assert h["max"] == want


def test_daily_means_group_day_only_with_group_hour(oracle):
    url = f"/api/v0/stats/hits?{R}&include_paths=15&daily=true"
    assert oracle.get(url, headers=auth_headers()).get_json()["hits"][0]["max"] == 3
    assert oracle.get(url + "&group=hour", headers=auth_headers()).get_json()[
        "hits"][0]["max"] == 3
    assert oracle.get(url + "&group=week", headers=auth_headers()).get_json()[
        "hits"][0]["max"] == 3
    assert oracle.get(f"/api/v0/stats/hits?{R}&include_paths=15", headers=auth_headers(
    )).get_json()["hits"][0]["max"] == 1


def test_unknown_group_is_400(oracle):
    resp = oracle.get(f"/api/v0/stats/hits?{R}&group=year", headers=auth_headers())
    assert_error(resp, 400)
    assert resp.get_json()["error"].startswith("invalid query parameters: group")


# Replies that differ from 2.7.0 by a decision (spec/DECISIONS.md) -----------------------

# DECISIONS: referrers sent through /api/v0/count are cleaned and classified like
# /count's (Google with scheme g, scheme and query dropped from URLs).
OURS = {
    "24-stats-hits-refs-root": {"refs": [
        {"name": "", "count": 1, "ref_scheme": "o"},
        {"name": "Google", "count": 1, "ref_scheme": "g"},
        {"name": "duckduckgo.com", "count": 1, "ref_scheme": "h"},
        {"name": "twitter.com/search?q=https%3A%2F%2Ft.co%2Fabc123", "count": 1,
         "ref_scheme": "h"}], "more": False},
    "26-stats-hits-refs-root-limit-2": {"refs": [
        {"name": "", "count": 1, "ref_scheme": "o"},
        {"name": "Google", "count": 1, "ref_scheme": "g"}], "more": True},
    "32-stats-toprefs": {"stats": [
        {"name": "", "count": 30, "ref_scheme": "o"},
        *({"id": n, "name": n, "count": 1, "ref_scheme": s} for n, s in [
            ("Google", "g"), ("twitter", "c"), ("Hacker News", "g"), ("Email", "g"),
            ("www.bing.com/search", "h"), ("Telegram Messenger", "g"), ("newsletter", "o"),
            ("producthunt", "c"), ("Mastodon", "c"), ("example.org", "h"),
            ("localhost:8080/dev", "h"), ("duckduckgo.com", "h"),
            ("twitter.com/search?q=https%3A%2F%2Ft.co%2Fabc123", "h"), ("hn", "c")])],
        "more": False},
    # DECISIONS: ua-parser names; Edge is its own browser (upstream counts it as Chrome
    # 131). Ties are ordered by name (upstream leaves their order open).
    "27-stats-browsers": {"stats": [
        {"name": "", "count": 14}, {"id": "Chrome", "name": "Chrome", "count": 12},
        {"id": "Firefox", "name": "Firefox", "count": 12},
        {"id": "Safari", "name": "Safari", "count": 4},
        {"id": "Edge", "name": "Edge", "count": 2}], "more": False},
    "28-stats-systems": {"stats": [
        {"name": "", "count": 14}, {"id": "Windows", "name": "Windows", "count": 9},
        {"id": "Linux", "name": "Linux", "count": 7}, {"id": "macOS", "name": "macOS", "count": 7},
        {"id": "Android", "name": "Android", "count": 4},
        {"id": "iOS", "name": "iOS", "count": 3}], "more": False},
    "34-stats-browsers-limit-2-offset-1": {"stats": [
        {"id": "Chrome", "name": "Chrome", "count": 12},
        {"id": "Firefox", "name": "Firefox", "count": 12}], "more": True},
    "37-stats-browsers-detail-chrome-lowercase": {"stats": [
        {"name": "Chrome 131", "count": 8}, {"name": "Chrome 130", "count": 4}], "more": False},
    # Region names (upstream's GeoIP database has none and shows ""); a row without a
    # region is "(unknown)", as spec 10.13 says.
    "40-stats-locations-detail-us": {"stats": [
        {"name": "(unknown)", "count": 5}, {"name": "Texas", "count": 3},
        {"name": "California", "count": 1}], "more": False},
}


@pytest.mark.parametrize("name", sorted(OURS))
def test_replies_that_differ_by_decision(oracle, name):
    resp = replay(oracle, name)
    assert resp.status_code == 200
    assert resp.get_json() == OURS[name]
    # The shape is upstream's: the same keys on every item.
    want = reply(name)["response"]["body"]
    assert set(resp.get_json()) == set(want)


@pytest.mark.parametrize(("name", "message"), [
    ("82-err-stats-sizes-detail-bogus",
     'unknown size class "bogus"; must be one of phone, tablet, desktop, desktophd, unknown'),
    ("83-err-stats-campaigns-detail-non-numeric", 'campaign id must be a number, not "abc"'),
])
def test_upstream_500s_are_400s(oracle, name, message):
    # DECISIONS: upstream 500s.
    assert reply(name)["response"]["status"] == 500
    assert_error(replay(oracle, name), 400, message)


def test_paths_after_per_hit_errors(tmp_path):
    app = new_app(tmp_path)
    scenario.oracle_site(app)
    clock.freeze(RECORDED)
    client = app.test_client()
    count_scenario(client)
    assert replay(client, "72-err-count-per-hit-errors").status_code == 400
    resp = replay(client, "99-paths-after-per-hit-errors")
    assert resp.status_code == 200
    assert resp.get_json() == reply("99-paths-after-per-hit-errors")["response"]["body"]


# Errors and parameters ---------------------------------------------------------------

def auth_headers(token: str = ORACLE_TOKEN, host: str = "127.0.0.1") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Host": host}


@pytest.mark.parametrize("page", ["nope", "total2", "refs2", "hit"])
def test_unknown_page_is_400_before_auth(oracle, page):
    want = {"page": ["must be one of ‘browsers, systems, locations, languages, sizes, "
                     "campaigns, toprefs’"]}
    assert_errors(oracle.get(f"/api/v0/stats/{page}"), 400, want)
    assert_errors(oracle.get(f"/api/v0/stats/{page}", headers=auth_headers()), 400, want)


def test_unknown_detail_page_is_400_before_auth(oracle):
    want = {"page": ["must be one of ‘browsers, systems, locations, sizes, campaigns, "
                     "toprefs’"]}
    assert_errors(oracle.get("/api/v0/stats/languages/eng"), 400, want)
    assert_errors(oracle.get("/api/v0/stats/nope/x"), 400, want)


def test_page_names_ignore_case(oracle):
    a = oracle.get(f"/api/v0/stats/Browsers?{R}", headers=auth_headers()).get_json()
    b = oracle.get(f"/api/v0/stats/browsers?{R}", headers=auth_headers()).get_json()
    assert a == b == OURS["27-stats-browsers"]


def test_refs_is_another_name_for_toprefs(oracle):
    # goatcounter-mcp-server asks for /stats/refs.
    resp = oracle.get(f"/api/v0/stats/refs?{R}", headers=auth_headers())
    assert resp.get_json() == OURS["32-stats-toprefs"]


@pytest.mark.parametrize("url", [
    "/api/v0/paths", f"/api/v0/stats/total?{R}", f"/api/v0/stats/hits?{R}",
    f"/api/v0/stats/hits/1?{R}", f"/api/v0/stats/browsers?{R}",
    f"/api/v0/stats/browsers/Firefox?{R}"])
def test_stats_need_the_stats_permission(tmp_path, url):
    app = new_app(tmp_path)
    site, token = make_site(app, perms=tokens.PERM_COUNT | tokens.PERM_EXPORT)
    resp = app.test_client().get(url, headers=auth_headers(token, site["cname"]))
    assert_error(resp, 403, "requires 'stats' permissions")
    resp = app.test_client().get(url, headers={"Host": site["cname"]})
    assert_error(resp, 401, "no Authorization header")


def test_path_id_is_checked_after_auth(oracle):
    assert_error(oracle.get("/api/v0/stats/hits/abc"), 401)
    assert_errors(oracle.get("/api/v0/stats/hits/99999999999", headers=auth_headers()), 400,
                  {"path_id": ["must be a whole number"]})


@pytest.mark.parametrize(("query", "message"), [
    ("include_paths=1,x", 'invalid number in include_paths: strconv.ParseInt: parsing "x": '
                          "invalid syntax"),
    ("exclude_paths=99999999999999999999", "invalid number in exclude_paths: strconv.ParseInt:"
                                           ' parsing "99999999999999999999": value out of range'),
    ("limit=1.5", "invalid query parameters: formam: could not parse number: strconv.ParseInt:"
                  ' parsing "1.5": invalid syntax'),
    ("start=yesterday", "invalid query parameters: formam: could not parse field: no suitable "
                        "time formats"),
    ("end=2026-02-30", "invalid query parameters: formam: could not parse field: no suitable "
                       "time formats"),
    ("Start=2026-11-19&foo=1", 'unknown parameter: "foo"'),
])
def test_bad_query_values(oracle, query, message):
    assert_error(oracle.get(f"/api/v0/stats/hits?{query}", headers=auth_headers()), 400, message)


@pytest.mark.parametrize("url", ["/api/v0/stats/total?limit=5", "/api/v0/stats/total?offset=1",
                                 "/api/v0/stats/total?exclude_paths=1",
                                 "/api/v0/stats/hits/1?include_paths=1",
                                 "/api/v0/stats/browsers?exclude_paths=1",
                                 "/api/v0/stats/browsers?group=day"])
def test_parameters_an_endpoint_does_not_take(oracle, url):
    resp = oracle.get(url, headers=auth_headers())
    assert_error(resp, 400)
    assert resp.get_json()["error"].startswith("unknown parameter")


def test_range_longer_than_the_limit_is_400(oracle):
    resp = oracle.get("/api/v0/stats/total?start=2000-01-01&end=2026-01-01",
                      headers=auth_headers())
    assert_error(resp, 400)
    # Lists without hourly numbers take any range.
    resp = oracle.get("/api/v0/stats/browsers?start=2000-01-01&end=2026-12-01",
                      headers=auth_headers())
    assert resp.get_json() == OURS["27-stats-browsers"]


@pytest.mark.parametrize(("start", "end"), [
    ("2026-11-19", "2026-11-25"),
    ("2026-11-19T00:00:00Z", "2026-11-25T00:00:00Z"),
    ("2026-11-19 00:00:00", "2026-11-25 00:00:00"),
    ("2026-11-19T01:00:00%2B01:00", "2026-11-25T02:00:00%2B02:00"),
    # An offset whose "+" arrived as a space (a client that did not encode it).
    ("2026-11-19T01:00:00+01:00", "2026-11-24T19:00:00-05:00"),
    ("2026-11-19T00:00:00.250Z", "2026-11-25T00:59:59.999Z"),
])
def test_time_forms(oracle, start, end):
    resp = oracle.get(f"/api/v0/stats/total?start={start}&end={end}", headers=auth_headers())
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["total"] == 44
    assert next(e["day"] for e in body["stats"]) == "2026-11-19"


@pytest.mark.parametrize(("limit", "want"), [("0", 1), ("-5", 1), ("3", 3), ("1000", 15)])
def test_limits_are_clamped(oracle, limit, want):
    body = oracle.get(f"/api/v0/stats/toprefs?{R}&limit={limit}",
                      headers=auth_headers()).get_json()
    assert len(body["stats"]) == want
    assert body["more"] is (want < 15)


def test_stats_limit_is_at_most_100(tmp_path):
    app = new_app(tmp_path)
    site, token = make_site(app, settings={"collect": 446})
    api = API(app.test_client(), token, site["cname"])
    clock.freeze(RECORDED)
    hits = [{"path": f"/p{i}", "session": f"s{i}", "created_at": "2026-11-20T10:00:00Z"}
            for i in range(120)]
    assert api.post("/api/v0/count", {"hits": hits}).status_code == 202
    body = api.get(f"/api/v0/stats/hits?{R}&limit=500").get_json()
    assert len(body["hits"]) == 100 and body["more"] is True
    assert body["total"] == 100


def test_negative_offset_is_zero(oracle):
    a = oracle.get(f"/api/v0/stats/toprefs?{R}&offset=-3", headers=auth_headers()).get_json()
    assert a == OURS["32-stats-toprefs"]


def test_start_after_end_is_empty(oracle):
    body = oracle.get("/api/v0/stats/total?start=2026-11-25&end=2026-11-19",
                      headers=auth_headers()).get_json()
    assert body == {"total": 0, "total_events": 0, "total_utc": 0, "visitors": 0, "stats": []}
    body = oracle.get("/api/v0/stats/hits?start=2026-11-25&end=2026-11-19",
                      headers=auth_headers()).get_json()
    assert body == {"hits": [], "total": 0, "more": False}


# What goatcounter-mcp-server sends (PITFALLS) ------------------------------------------

def test_repeated_include_paths(oracle):
    a = oracle.get(f"/api/v0/stats/total?{R}&include_paths=1&include_paths=15",
                   headers=auth_headers()).get_json()
    b = oracle.get(f"/api/v0/stats/total?{R}&include_paths=1,15", headers=auth_headers()).get_json()
    assert a == b and a["total"] == 7


def test_filter_selects_paths_by_text(oracle):
    body = oracle.get(f"/api/v0/stats/hits?{R}&filter=NEWSLETTER&daily=false",
                      headers=auth_headers()).get_json()
    assert [(h["path"], h["count"]) for h in body["hits"]] == [
        ("/newsletter/issue-2", 2), ("/newsletter/issue-1", 2)]
    total = oracle.get(f"/api/v0/stats/total?{R}&filter=newsletter&daily=true",
                       headers=auth_headers()).get_json()
    assert total["total"] == 4
    # Combined with include_paths: both must hold.
    body = oracle.get(f"/api/v0/stats/hits?{R}&filter=newsletter&include_paths=22,1",
                      headers=auth_headers()).get_json()
    assert [h["path_id"] for h in body["hits"]] == [22]


@pytest.mark.parametrize(("text", "want"), [
    ("pricing", ["/pricing", "/pricing?plan=pro"]),
    ("in:title prices", ["/pricing?plan=pro"]),
    ("in:path prices", []),
    ("is:event share", ["share/twitter"]),
    ("at:start share", ["share/twitter"]),
    ("at:end report.pdf", ["download/report.pdf"]),
    # Case is ignored for ASCII letters only ("é" is not "e"), as SQLite's LIKE.
    (":not e", ["/about", "/contact", "/docs//api", "/fractional", "/ip-only", "/pricing",
                "/ünïcödé/路径", "signup-click"]),
    ("is:event :not click", ["(no event name)", "download/report.pdf", "outbound-link",
                             "share/twitter", "video-play"]),
    ("100%", []),
    ("under_score", []),
])
def test_filter_keywords(oracle, text, want):
    from urllib.parse import quote
    body = oracle.get(f"/api/v0/stats/hits?{R}&limit=100&filter={quote(text)}",
                      headers=auth_headers()).get_json()
    assert sorted(h["path"] for h in body["hits"]) == sorted(want)


def test_after_continues_the_hit_list(oracle):
    first = oracle.get(f"/api/v0/stats/hits?{R}&limit=5", headers=auth_headers()).get_json()
    last = first["hits"][-1]["path_id"]
    nxt = oracle.get(f"/api/v0/stats/hits?{R}&limit=5&after={last}",
                     headers=auth_headers()).get_json()
    want = copy.deepcopy(reply("17-stats-hits-page-2")["response"]["body"])
    for h in want["hits"]:
        h["stats"] = with_blocks(h["stats"])
    assert nxt == want
    # After a path without visits there is nothing to continue with.
    none = oracle.get(f"/api/v0/stats/hits?{R}&after=14", headers=auth_headers()).get_json()
    assert none == {"hits": [], "total": 0, "more": False}


def test_after_is_an_offset_on_lists(oracle):
    a = oracle.get(f"/api/v0/stats/browsers?{R}&limit=2&after=1", headers=auth_headers())
    assert a.get_json() == OURS["34-stats-browsers-limit-2-offset-1"]
    # An explicit offset wins.
    b = oracle.get(f"/api/v0/stats/browsers?{R}&limit=2&after=1&offset=0",
                   headers=auth_headers()).get_json()
    assert b["stats"][0]["name"] == ""


def test_paging_with_exclude_paths_reaches_every_path(oracle):
    seen: list[int] = []
    total = 0
    while True:
        url = f"/api/v0/stats/hits?{R}&limit=7&exclude_paths={','.join(map(str, seen))}"
        body = oracle.get(url, headers=auth_headers()).get_json()
        seen += [h["path_id"] for h in body["hits"]]
        total += body["total"]
        if not body["more"]:
            break
    assert total == 44
    assert len(seen) == len(set(seen)) == 36


def test_path_by_name_in_exclude_paths(oracle):
    body = oracle.get(f"/api/v0/stats/hits?{R}&limit=2&path_by_name=1&exclude_paths=/,/about",
                      headers=auth_headers()).get_json()
    assert [h["path_id"] for h in body["hits"]] == [23, 22]
    # No name matches: nothing is excluded.
    body = oracle.get(f"/api/v0/stats/hits?{R}&limit=2&path_by_name=1&exclude_paths=/NOPE",
                      headers=auth_headers()).get_json()
    assert [h["path_id"] for h in body["hits"]] == [1, 15]


# Time zones ----------------------------------------------------------------------------

def zone_site(tmp: Path, timezone: str) -> tuple[Flask, API]:
    app = new_app(tmp)
    site, token = make_site(app, settings={"collect": 446})
    with app.app_context():
        def run(conn):
            row = conn.execute("SELECT id, settings FROM users").fetchone()
            settings = json.loads(row["settings"])
            settings["timezone"] = timezone
            conn.execute("UPDATE users SET settings = ? WHERE id = ?",
                         (json.dumps(settings), row["id"]))
        db.write(run)
    return app, API(app.test_client(), token, site["cname"])


def count(api: API, *times: str, path: str = "/", session: str | None = None) -> None:
    hits = [{"path": path, "session": session or f"v{t}", "created_at": t} for t in times]
    assert api.post("/api/v0/count", {"hits": hits}).status_code == 202


def hours(**at: int) -> list[int]:
    out = [0] * 24
    for key, n in at.items():
        out[int(key[1:])] = n
    return out


def test_hourly_numbers_across_a_dst_change(tmp_path):
    # Europe/Amsterdam moves from +01:00 to +02:00 at 2026-03-29T01:00Z.
    _app, api = zone_site(tmp_path, "NL.Europe/Amsterdam")
    clock.freeze(dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    count(api, "2026-03-28T00:30:00Z",   # 01:30 local on the 28th
          "2026-03-28T22:30:00Z",        # 23:30 on the 28th
          "2026-03-28T23:10:00Z",        # 00:10 on the 29th
          "2026-03-29T00:30:00Z",        # 01:30 (still +01:00)
          "2026-03-29T01:30:00Z",        # 03:30 (now +02:00; there is no 02:00)
          "2026-03-29T22:30:00Z",        # 00:30 on the 30th
          "2026-03-31T01:30:00Z")        # after the range
    body = api.get("/api/v0/stats/total?start=2026-03-28&end=2026-03-30T23:59:59Z").get_json()
    days = [
        {"day": "2026-03-28", "hourly": hours(h1=1, h23=1), "daily": 2},
        {"day": "2026-03-29", "hourly": hours(h0=1, h1=1, h3=1), "daily": 3},
        {"day": "2026-03-30", "hourly": hours(h0=1), "daily": 1},
        {"day": "2026-03-31", "hourly": hours(), "daily": 0},
    ]
    # total_utc is the range read as wall-clock times: 2026-03-28T01:00Z to
    # 2026-03-31T01:59:59Z, which drops the first hit and takes the last.
    assert body == {"total": 6, "total_events": 0, "total_utc": 6, "visitors": 7,
                    "stats": with_blocks(days)}
    hits = api.get("/api/v0/stats/hits?start=2026-03-28&end=2026-03-30T23:59:59Z").get_json()
    assert hits == {"hits": [{"count": 6, "path_id": 1, "path": "/", "event": False,
                              "title": "", "max": 1, "stats": with_blocks(days)}],
                    "total": 6, "more": False}


def test_hourly_numbers_in_a_half_hour_zone(tmp_path):
    _app, api = zone_site(tmp_path, "IN.Asia/Kolkata")
    clock.freeze(dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    # Hours are kept as UTC hours: 10:00Z is 15:30 local, shown in hour 15.
    count(api, "2026-03-20T10:10:00Z",   # hour 10:00Z: 15:30 local
          "2026-03-20T18:45:00Z",        # hour 18:00Z: 23:30 local
          "2026-03-20T19:10:00Z")        # hour 19:00Z: 00:30 on the 21st
    body = api.get("/api/v0/stats/total?start=2026-03-20&end=2026-03-20T23:59:59Z").get_json()
    assert body["stats"] == with_blocks([
        {"day": "2026-03-20", "hourly": hours(h15=1, h23=1), "daily": 2},
        {"day": "2026-03-21", "hourly": hours(h0=1), "daily": 1}])
    assert body["total"] == 3


def test_utc_is_the_default_zone(tmp_path):
    _app, api = zone_site(tmp_path, "")
    clock.freeze(dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    count(api, "2026-03-20T23:30:00Z")
    body = api.get("/api/v0/stats/total?start=2026-03-20&end=2026-03-21").get_json()
    assert [e["hourly"] for e in body["stats"]] == [hours(h23=1), hours()]


def test_daily_tables_use_the_local_dates_of_the_range(tmp_path):
    # Browsers etc. are kept per UTC day and read from the start's to the end's date in
    # the user's zone, as upstream.
    _app, api = zone_site(tmp_path, "US.America/New_York")
    clock.freeze(dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    count(api, "2026-03-19T12:00:00Z", "2026-03-20T12:00:00Z")
    # 2026-03-20T02:00Z is the 19th in New York: the 19th and the 20th are read.
    body = api.get("/api/v0/stats/sizes?start=2026-03-20T02:00:00Z&end=2026-03-20T23:00:00Z")
    assert body.get_json()["stats"][4] == {"id": "unknown", "name": "", "count": 2}


def test_size_classes_at_their_edges(tmp_path):
    _app, api = zone_site(tmp_path, "")
    clock.freeze(dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    widths = [0, 1, 600, 601, 1000, 1001, 1920, 1921, 5000, 1920]
    assert api.post("/api/v0/count", {"hits": [
        {"path": "/", "session": f"v{i}", "size": str(w), "created_at": "2026-03-20T10:00:00Z"}
        for i, w in enumerate(widths)]}).status_code == 202
    q = "start=2026-03-20&end=2026-03-20"
    assert api.get(f"/api/v0/stats/sizes?{q}").get_json()["stats"] == [
        {"id": "phone", "name": "", "count": 2}, {"id": "tablet", "name": "", "count": 2},
        {"id": "desktop", "name": "", "count": 3}, {"id": "desktophd", "name": "", "count": 2},
        {"id": "unknown", "name": "", "count": 1}]

    def detail(cls: str) -> list[tuple[str, int]]:
        body = api.get(f"/api/v0/stats/sizes/{cls}?{q}").get_json()
        return [(s["name"], s["count"]) for s in body["stats"]]

    px = "\u2194\ufe0e "
    assert detail("phone") == [(f"{px}1px", 1), (f"{px}600px", 1)]
    assert detail("tablet") == [(f"{px}1000px", 1), (f"{px}601px", 1)]
    assert detail("desktop") == [(f"{px}1920px", 2), (f"{px}1001px", 1)]
    assert detail("desktophd") == [(f"{px}1921px", 1), (f"{px}5000px", 1)]
    assert detail("unknown") == [(f"{px}0px", 1)]


# Site isolation ------------------------------------------------------------------------

def test_another_sites_paths_give_nothing(tmp_path):
    app = new_app(tmp_path)
    _mine, my_token = make_site(app, cname="mine.example.com", settings={"collect": 446})
    _theirs, their_token = make_site(app, cname="theirs.example.com", settings={"collect": 446},
                                    email="other@example.com")
    clock.freeze(RECORDED)
    a = API(app.test_client(), my_token, "mine.example.com")
    b = API(app.test_client(), their_token, "theirs.example.com")
    count(a, "2026-11-20T10:00:00Z", path="/mine")
    count(b, "2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z", path="/theirs")
    theirs_id = b.get("/api/v0/paths").get_json()["paths"][0]["id"]
    assert [p["path"] for p in a.get("/api/v0/paths").get_json()["paths"]] == ["/mine"]
    assert a.get(f"/api/v0/stats/hits?{R}&include_paths={theirs_id}").get_json() == {
        "hits": [], "total": 0, "more": False}
    assert a.get(f"/api/v0/stats/hits/{theirs_id}?{R}").get_json() == {
        "refs": [], "more": False}
    total = a.get(f"/api/v0/stats/total?{R}&include_paths={theirs_id}").get_json()
    assert total["total"] == 0
    assert a.get(f"/api/v0/stats/total?{R}").get_json()["total"] == 1
    assert a.get(f"/api/v0/stats/sizes?{R}&include_paths={theirs_id}").get_json()["stats"][4] \
        == {"id": "unknown", "name": "", "count": 0}
    assert a.get(f"/api/v0/stats/hits?{R}&path_by_name=1&include_paths=/theirs").get_json()[
        "hits"] == []
    # A token of one site can't read the other (a different account).
    resp = app.test_client().get(f"/api/v0/stats/total?{R}",
                                 headers=auth_headers(my_token, "theirs.example.com"))
    assert_error(resp, 401, "unknown token")


def test_toprefs_leave_out_the_sites_own_domain(tmp_path):
    app = new_app(tmp_path)
    site, token = make_site(app, settings={"collect": 446})
    sql_write(app, "UPDATE sites SET link_domain = 'https://www.example_site.com/'")
    api = API(app.test_client(), token, site["cname"])
    clock.freeze(RECORDED)
    hits = [{"path": "/a", "session": f"s{i}", "ref": ref, "created_at": "2026-11-20T10:00:00Z"}
            for i, ref in enumerate(["https://www.example_site.com/x", "https://wwwXexample_site.com/",
                                     "https://other.org/", "https://other.org/"])]
    assert api.post("/api/v0/count", {"hits": hits}).status_code == 202
    body = api.get(f"/api/v0/stats/toprefs?{R}").get_json()
    # "_" is not a wildcard in the domain.
    assert body == {"stats": [
        {"id": "other.org", "name": "other.org", "count": 2, "ref_scheme": "h"},
        {"id": "wwwXexample_site.com", "name": "wwwXexample_site.com", "count": 1,
         "ref_scheme": "h"}], "more": False}


def sql_write(app: Flask, query: str, args: Any = ()) -> None:
    with app.app_context():
        db.write(lambda conn: conn.execute(query, args))


# Agreement with the stored hits --------------------------------------------------------

# A range and the hours it takes: from the first whole hour at or after `start` up to
# the end of the hour that `end` lies in.
@pytest.mark.parametrize(("start", "end", "first", "last"), [
    ("2026-11-19", "2026-11-25", "2026-11-19T00:00", "2026-11-25T01:00"),
    ("2026-11-20T08:00:00Z", "2026-11-22T14:59:59Z", "2026-11-20T08:00", "2026-11-22T15:00"),
    ("2026-11-20T08:30:00Z", "2026-11-24T00:00:00Z", "2026-11-20T09:00", "2026-11-24T01:00"),
    ("2026-11-21", "2026-11-21", "2026-11-21T00:00", "2026-11-21T01:00"),
    ("2026-11-22T15:00:00Z", "2026-11-22T15:00:00Z", "2026-11-22T15:00", "2026-11-22T16:00"),
    ("2026-11-01", "2026-12-31", "2026-11-01T00:00", "2026-12-31T01:00")])
def test_total_is_the_first_visits_stored_in_the_range(oracle, oracle_app, start, end, first,
                                                       last):
    body = oracle.get(f"/api/v0/stats/total?start={start}&end={end}",
                      headers=auth_headers()).get_json()
    stored = sql(oracle_app, "SELECT count(*), sum(p.event) FROM hits h JOIN paths p"
                             " ON p.id = h.path_id WHERE first_visit = 1 AND created_at >= ?"
                             " AND created_at < ?", (utc(first), utc(last)))[0]
    assert body["total"] == body["total_utc"] == sum(e["daily"] for e in body["stats"]) \
        == stored[0]
    assert body["total_events"] == (stored[1] or 0)
    pages = oracle.get(f"/api/v0/stats/hits?start={start}&end={end}&limit=100",
                       headers=auth_headers()).get_json()
    assert pages["total"] == stored[0]


def test_answers_come_from_the_aggregates_not_the_hits(tmp_path):
    app = new_app(tmp_path)
    scenario.oracle_site(app)
    clock.freeze(RECORDED)
    client = app.test_client()
    count_scenario(client)
    urls = [f"/api/v0/stats/total?{R}", f"/api/v0/stats/hits?{R}", f"/api/v0/stats/hits/1?{R}",
            *(f"/api/v0/stats/{p}?{R}" for p in ("browsers", "systems", "locations",
                                                  "languages", "sizes", "campaigns",
                                                  "toprefs")),
            f"/api/v0/stats/browsers/firefox?{R}", f"/api/v0/stats/toprefs/Google?{R}"]
    before = [client.get(u, headers=auth_headers()).get_json() for u in urls]
    sql_write(app, "DELETE FROM hits")
    assert [client.get(u, headers=auth_headers()).get_json() for u in urls] == before


# The tables a scan of would grow with the data (the aggregates, and the hits).
BIG_TABLES = {"hits", "hit_counts", "site_counts", "path_days", "path_months", "ref_counts",
              "ref_hours", "ref_days", "visitor_days", "anonymous_days", "paths",
              *(f"{d}_{k}" for d in ("browser", "system", "location", "size", "language",
                                      "campaign") for k in ("stats", "days"))}


@pytest.mark.sqlite_only("traces SQLite connections and reads SQLite's plans")
def test_queries_read_by_index(tmp_path, monkeypatch):
    """Every stats query finds its rows through a key or an index: no table of the
    aggregates (or of hits) is read whole."""
    seen: list[str] = []
    connect = db.connect

    def traced(path: str) -> sqlite3.Connection:
        conn = connect(path)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(db, "connect", traced)
    app = new_app(tmp_path)
    scenario.oracle_site(app)
    clock.freeze(RECORDED)
    client = app.test_client()
    count_scenario(client)
    seen.clear()
    for u in [f"/api/v0/stats/total?{R}", "/api/v0/stats/total?start=2026-11-19T05:00:00Z"
              "&end=2026-11-25T20:00:00Z&include_paths=1,2&filter=a",
              f"/api/v0/stats/hits?{R}&exclude_paths=1", f"/api/v0/stats/hits?{R}&after=3",
              "/api/v0/stats/hits?start=2026-11-19T05:00:00Z&end=2026-11-25T20:00:00Z",
              f"/api/v0/stats/hits?{R}&include_paths=1,2", f"/api/v0/stats/hits/1?{R}",
              # Long enough for daily numbers only (from path_months).
              "/api/v0/stats/hits?start=2026-01-01&end=2026-11-25&limit=100",
              "/api/v0/paths?after=3",
              *(f"/api/v0/stats/{p}?{R}{f} " for p in ("browsers", "systems", "locations",
                                                       "languages", "sizes", "campaigns",
                                                       "toprefs")
                for f in ("", "&include_paths=1")),
              "/api/v0/stats/toprefs?start=2026-11-19T05:00:00Z&end=2026-11-25T20:00:00Z",
              *(f"/api/v0/stats/{p}?{R}{f}" for p in ("browsers/firefox", "systems/Linux",
                                                      "locations/US", "sizes/phone",
                                                      "campaigns/1", "toprefs/Google")
                for f in ("", "&include_paths=1"))]:
        assert client.get(u.strip(), headers=auth_headers()).status_code == 200, u
    words = re.compile(r"\b(" + "|".join(sorted(BIG_TABLES)) + r")\b")
    statements = {s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))
                  and words.search(s)}
    assert len(statements) > 20
    with app.app_context():
        conn = db.get_db()
        for text in statements:
            for row in conn.execute("EXPLAIN QUERY PLAN " + text):
                detail = row[3]
                if detail.startswith("SCAN "):
                    assert detail.split()[1] not in BIG_TABLES, (detail, text)


# Ranges, zones and filters against numbers computed from the stored hits -----------------

ZONES = ["", "NL.Europe/Amsterdam", "IN.Asia/Kolkata", "US.America/New_York"]


def random_site(tmp: Path, seed: int) -> tuple[Flask, API, random.Random]:
    rnd = random.Random(seed)
    app, api = zone_site(tmp, rnd.choice(ZONES))
    clock.freeze(dt.datetime(2026, 12, 20, tzinfo=dt.UTC))
    base = dt.datetime(2026, 9, 25, tzinfo=dt.UTC)
    hits = []
    for _ in range(400):
        when = base + dt.timedelta(seconds=rnd.randrange(80 * 86400))
        hits.append({
            "path": f"/p{min(int(rnd.paretovariate(1.2)), 25)}",
            "event": rnd.random() < 0.1,
            "session": f"s{rnd.randrange(120)}",
            "ref": rnd.choice(["", "", "https://example.org/a", "https://www.google.com/",
                               "newsletter"]),
            "user_agent": rnd.choice([
                "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                "Gecko) Chrome/131.0.0.0 Safari/537.36"]),
            "size": rnd.choice(["390", "1024", "1920", "2560", ""]),
            "location": rnd.choice(["NL", "US-TX", "", "DE"]),
            "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    for i in range(0, len(hits), 100):
        assert api.post("/api/v0/count", {"hits": hits[i:i + 100],
                                          "no_sessions": True}).status_code == 202
    return app, api, rnd


def random_range(rnd: random.Random) -> tuple[int, int]:
    start = int(dt.datetime(2026, 9, 20, tzinfo=dt.UTC).timestamp()) + \
        rnd.randrange(90 * 86400)
    if rnd.random() < 0.3:
        start -= start % 86400
    end = start + rnd.randrange(1, 75 * 86400)
    if rnd.random() < 0.3:
        end -= end % 86400
    return start, end


def iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("seed", range(4))
def test_random_ranges_agree_with_the_stored_hits(tmp_path, seed):
    app, api, rnd = random_site(tmp_path, seed)
    setting = sql(app, "SELECT settings FROM users")[0][0]
    zone_name = json.loads(setting)["timezone"].partition(".")[2]
    tz = zoneinfo.ZoneInfo(zone_name) if zone_name else dt.UTC
    rows = sql(app, "SELECT h.path_id, h.created_at, h.ref_id, h.width, p.event, h.session"
                    " FROM hits h JOIN paths p ON p.id = h.path_id WHERE first_visit = 1")
    for _ in range(6):
        start, end = random_range(rnd)
        # The hours whose start lies within [start, end].
        first, last = start + (-start) % 3600, end - end % 3600
        inside = [r for r in rows if first <= r[1] - r[1] % 3600 <= last]
        q = f"start={iso(start)}&end={iso(end)}"

        # stats/total: every day and hour in the user's zone.
        d0 = dt.datetime.fromtimestamp(start, tz).date()
        d1 = dt.datetime.fromtimestamp(end, tz).date()
        days = [d0 + dt.timedelta(days=i) for i in range((d1 - d0).days + 1)]
        grid = {d: [0] * 24 for d in days}
        for r in inside:
            when = dt.datetime.fromtimestamp(r[1] - r[1] % 3600, tz)
            grid[when.date()][when.hour] += 1
        want_stats = with_blocks([{"day": d.isoformat(), "hourly": grid[d],
                                   "daily": sum(grid[d])} for d in days])
        total = api.get(f"/api/v0/stats/total?{q}").get_json()
        assert total["stats"] == want_stats
        assert total["total"] == len(inside)
        assert total["total_events"] == sum(r[4] for r in inside)
        u0, u1 = utc(d0.isoformat()), utc(d1.isoformat()) + 86400
        assert total["visitors"] == len({r[5] for r in rows if u0 <= r[1] < u1})

        # stats/hits: every path with visits, most first, ties by id (high first).
        per_path = Counter(r[0] for r in inside)
        want_order = sorted(per_path.items(), key=lambda kv: (-kv[1], -kv[0]))
        hits = api.get(f"/api/v0/stats/hits?{q}&limit=100").get_json()
        assert [(h["path_id"], h["count"]) for h in hits["hits"]] == want_order
        top = api.get(f"/api/v0/stats/hits?{q}&limit=3").get_json()
        assert [(h["path_id"], h["count"]) for h in top["hits"]] == want_order[:3]
        assert top["more"] is (len(want_order) > 3)

        # stats/toprefs and a path's referrers: to the hour as well.
        per_ref = Counter(r[2] for r in inside)
        refs = api.get(f"/api/v0/stats/toprefs?{q}&limit=100").get_json()["stats"]
        assert sorted(s["count"] for s in refs) == sorted(per_ref.values())
        if want_order:
            path_id = want_order[0][0]
            by_path = api.get(f"/api/v0/stats/hits/{path_id}?{q}").get_json()["refs"]
            assert sorted(s["count"] for s in by_path) == sorted(
                Counter(r[2] for r in inside if r[0] == path_id).values())

        # Daily tables: whole UTC days of the local dates.
        daily = [r for r in rows if u0 <= r[1] < u1]
        sizes = api.get(f"/api/v0/stats/sizes?{q}").get_json()["stats"]
        assert sum(s["count"] for s in sizes) == len(daily)
        assert sizes[4]["count"] == sum(1 for r in daily if not r[3])
        pick = rnd.sample(sorted({r[0] for r in rows}), 3)
        only = [r for r in daily if r[0] in pick]
        sizes = api.get(f"/api/v0/stats/sizes?{q}&include_paths="
                        + ",".join(map(str, pick))).get_json()["stats"]
        assert sum(s["count"] for s in sizes) == len(only)


def test_month_parts():
    day = utc
    assert month_parts(day("2026-10-27"), day("2026-11-25")) == [
        (day("2026-10-01"), 27, 31), (day("2026-11-01"), 1, 25)]
    assert month_parts(day("2028-01-31"), day("2028-03-01")) == [
        (day("2028-01-01"), 31, 31), (day("2028-02-01"), 1, 29), (day("2028-03-01"), 1, 1)]
    assert month_parts(day("2026-05-05"), day("2026-05-05")) == [(day("2026-05-01"), 5, 5)]


def test_path_months_hold_running_totals(oracle_app):
    rows = sql(oracle_app, "SELECT day, path_id, total FROM path_days")
    want: dict[tuple[int, int], list[int]] = {}
    for day, path_id, total in rows:
        month, mday = aggregates.month_of(day)
        sums = want.setdefault((month, path_id), [0] * 31)
        for i in range(mday - 1, 31):
            sums[i] += total
    got = {(r[0], r[1]): list(r[2:]) for r in sql(
        oracle_app, "SELECT month, path_id, " + ", ".join(f"c{i}" for i in range(1, 32))
        + " FROM path_months")}
    assert got == want


# Unique visitors -------------------------------------------------------------------------

def test_visitors_count_each_session_once(tmp_path):
    app = new_app(tmp_path)
    site, token = make_site(app, settings={"collect": 446})
    api = API(app.test_client(), token, site["cname"])
    clock.freeze(dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    # Backdated hits arrive out of order: the links between a session's days must still
    # make every range count it once.
    hits = [("a", "/1", "2026-11-20"), ("a", "/2", "2026-11-25"), ("a", "/3", "2026-11-22"),
            ("b", "/1", "2026-11-22"), ("a", "/4", "2026-11-18"), ("c", "/1", "2026-11-25")]
    for session, path, day in hits:
        assert api.post("/api/v0/count", {"hits": [
            {"path": path, "session": session, "created_at": f"{day}T10:00:00Z"}]}).status_code \
            == 202
    # Visits without a session each count as a visitor.
    engines.set_json(app, "sites", "settings", "collect", 318)
    with app.app_context():
        site = sites.get(db.get_db(), site["id"])
    from goatcounter.counting import store
    from goatcounter.counting.pipeline.process import Incoming, process
    with app.test_request_context():
        hit = process(Incoming(path="/anon", created_at=dt.datetime(
            2026, 11, 22, 9, tzinfo=dt.UTC).timestamp()), site["settings"], clock.now(), None)
        assert isinstance(hit, Hit)
        store.save(site, [hit, copy.copy(hit)])

    def visitors(start: str, end: str) -> int:
        return api.get(f"/api/v0/stats/total?start={start}&end={end}").get_json()["visitors"]

    assert visitors("2026-11-18", "2026-11-30") == 3 + 2
    assert visitors("2026-11-21", "2026-11-24") == 2 + 2
    assert visitors("2026-11-23", "2026-11-25") == 2
    assert visitors("2026-11-19", "2026-11-20") == 1
    assert visitors("2026-11-26", "2026-11-30") == 0
    # Each row points to the session's previous day.
    prev = sql(app, "SELECT day, prev FROM visitor_days ORDER BY session, day")
    links = [(dt.datetime.fromtimestamp(d, dt.UTC).day,
              (p and dt.datetime.fromtimestamp(p, dt.UTC).day) or 0) for d, p in prev]
    assert sorted(links) == [(18, 0), (20, 18), (22, 0), (22, 20), (25, 0), (25, 22)]


def test_visitors_do_not_follow_include_paths(oracle):
    a = oracle.get(f"/api/v0/stats/total?{R}&include_paths=1", headers=auth_headers()).get_json()
    assert a["visitors"] == 17 and a["total"] == 4


# The migration that adds the read rollups ---------------------------------------------------

def test_migration_0002_fills_the_new_rollups(tmp_path):
    conn = db.connect(str(tmp_path / "old.sqlite3"))
    migrations = db._migrations()
    assert [name for name, _ in migrations][:2] == ["0001_initial", "0002_stats_reads"]
    for stmt in db._statements(migrations[0][1]):
        conn.execute(stmt)
    day = utc
    conn.executemany("INSERT INTO path_days (site_id, day, path_id, total) VALUES (?, ?, ?, ?)",
                     [(1, day("2026-10-30"), 7, 2), (1, day("2026-11-02"), 7, 3),
                      (1, day("2026-11-30"), 7, 1), (2, day("2026-11-02"), 7, 5)])
    conn.executemany("INSERT INTO visitor_days (site_id, day, session) VALUES (?, ?, ?)",
                     [(1, day("2026-11-02"), 9), (1, day("2026-11-05"), 9),
                      (1, day("2026-11-03"), 9), (1, day("2026-11-05"), 8),
                      (2, day("2026-11-01"), 9)])
    for stmt in db._statements(migrations[1][1]):
        conn.execute(stmt)
    months = {tuple(r[:3]): list(r[3:]) for r in conn.execute(
        "SELECT site_id, month, path_id, " + ", ".join(f"c{i}" for i in range(1, 32))
        + " FROM path_months")}
    oct_, nov = day("2026-10-01"), day("2026-11-01")
    assert months == {(1, oct_, 7): [0] * 29 + [2, 2], (1, nov, 7): [0] + [3] * 28 + [4] * 2,
                      (2, nov, 7): [0] + [5] * 30}
    prev = {(r[0], r[1], r[2]): r[3] for r in conn.execute(
        "SELECT site_id, day, session, prev FROM visitor_days")}
    assert prev == {(1, day("2026-11-02"), 9): None, (1, day("2026-11-03"), 9): day("2026-11-02"),
                    (1, day("2026-11-05"), 9): day("2026-11-03"), (1, day("2026-11-05"), 8): None,
                    (2, day("2026-11-01"), 9): None}
    conn.close()


# Units -------------------------------------------------------------------------------------

def test_hour_and_day_edges():
    assert ranges.day_start(dt.date(2026, 11, 10)) == 1794268800
    assert ranges.day_start(dt.date(1970, 1, 1)) == 0
    assert ranges.ceil_to(1794268800, 3600) == ranges.floor_to(1794268800, 3600) == 1794268800
    assert ranges.ceil_to(1794268801, 3600) == 1794272400
    assert ranges.floor_to(1794272399, 3600) == 1794268800
    assert ranges.parse_time("2026-11-10", "start") == 1794268800
    assert ranges.parse_time("2026-11-10T01:00:00+01:00", "start") == 1794268800


def test_split_reads_edge_days_the_cheaper_way():
    d = utc("2026-11-10")
    h = 3600
    # Whole days only.
    assert ranges.Range(d, d + 3 * 86400 - 1).split() == ((d, d + 2 * 86400), [])
    # A short edge is read by the hour; a long one as its whole day less the rest.
    assert ranges.Range(d + 20 * h, d + 3 * 86400 + 2 * h).split() == (
        (d + 86400, d + 2 * 86400), [(d + 20 * h, d + 23 * h, 1),
                                      (d + 3 * 86400, d + 3 * 86400 + 2 * h, 1)])
    assert ranges.Range(d + 3 * h, d + 3 * 86400 + 20 * h).split() == (
        (d, d + 3 * 86400), [(d, d + 2 * h, -1),
                             (d + 3 * 86400 + 21 * h, d + 3 * 86400 + 23 * h, -1)])
    # Within one day: hours only.
    assert ranges.Range(d + 3 * h, d + 20 * h).split() == (None, [(d + 3 * h, d + 20 * h, 1)])
    assert ranges.Range(d + 3 * h + 1, d + 3 * h + 59).split() == (None, [])


def test_render_writes_what_json_response_writes():
    from goatcounter import responses
    body = {"stats": [{"day": "2026-11-20", "hourly": render.Ints([0, 3] * 12), "daily": 36,
                       "weekly": 36}], "hits": [], "x": {}, "s": "Café \u2028 \"q\" <a>",
            "n": None, "b": [True, False], "f": 1.5, "mixed": [1, "a", [2, []], {"k": 1}]}
    assert render.dumps(body) == responses.dumps(body)


# The API description -------------------------------------------------------------------------

def test_api_json_is_served(client):
    resp = client.get("/api.json")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    spec = resp.get_json()
    assert spec["swagger"] == "2.0"
    assert "enum:" not in json.dumps(spec)
    paths = spec["paths"]
    assert [p["name"] for p in paths["/api/v0/paths"]["get"]["parameters"]] == ["limit", "after"]
    defs = spec["definitions"]
    assert defs["goatcounter.APIToken"]["properties"]["sites"]["type"] == "array"
    assert defs["goatcounter.UserSettings"]["properties"]["timezone"]["type"] == "string"
    assert defs["goatcounter.UserSettings"]["properties"]["number_format"]["type"] == "integer"
    assert defs["handlers.APICountRequestHit"]["properties"]["size"]["type"] == "string"
    for key in ("ignore_ips", "collect_regions", "allow_embed"):
        assert defs["goatcounter.SiteSettings"]["properties"][key]["type"] == "string"
    assert "visitors" in defs["handlers.apiCountTotalResponse"]["properties"]
    assert {"bearerAuth": []} in spec["security"]
    count_params = paths["/api/v0/count"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in count_params)
    group = next(p for p in paths["/api/v0/stats/hits"]["get"]["parameters"]
                 if p["name"] == "group")
    assert group["type"] == "string" and group["enum"][:4] == ["hour", "day", "week", "month"]


def test_api_json_is_valid_swagger(client):
    openapi_spec_validator.validate(client.get("/api.json").get_json())


def test_api_json_describes_every_stats_route(app):
    spec = json.loads(app.test_client().get("/api.json").get_data())
    rules = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule).replace("{ident}", "{id}")
             for r in app.url_map.iter_rules()
             if r.rule.startswith("/api/v0/stats") or r.rule == "/api/v0/paths"}
    assert rules == {"/api/v0/paths", "/api/v0/stats/total", "/api/v0/stats/hits",
                     "/api/v0/stats/hits/{path_id}", "/api/v0/stats/{page}",
                     "/api/v0/stats/{page}/{id}"}
    assert rules <= set(spec["paths"])
    assert {"/api/v0/stats/sizes/{id}", "/api/v0/stats/campaigns/{id}"} <= set(spec["paths"])


# Bounded work (issue 9, item 8) ----------------------------------------------------------

def test_daily_numbers_of_months_read_in_any_order():
    """A month of fewer than 31 days has its c31 (and c29, c30) columns too: read after
    the next month's row, they must not write over that month's first days. PostgreSQL
    returns the rows in whatever order its plan gives, SQLite by the primary key."""
    nov, dec = utc("2026-11-01"), utc("2026-12-01")
    november = [*range(1, 31), 30]  # one visit a day; c31 repeats c30
    december = [2] * 3 + [5] * 28  # two visits on the 1st, three on the 4th
    days = 61
    for rows in ([(nov, 7, *november), (dec, 7, *december)],
                 [(dec, 7, *december), (nov, 7, *november)]):
        got = hitlist.daily_of_months(rows, nov, days, {7: [0] * days})[7]
        assert got[:30] == [1] * 30
        assert got[30:34] == [2, 0, 0, 3]
        assert sum(got) == 35


def test_long_ranges_get_daily_numbers_of_utc_days(tmp_path):
    """Over HOURLY_ENTRIES day entries (paths asked for × days), entries carry daily
    numbers of whole UTC days, without `hourly`; the numbers are the stored hits'."""
    app, api, _ = random_site(tmp_path, 1)
    rows = sql(app, "SELECT path_id, created_at FROM hits WHERE first_visit = 1")
    setting = json.loads(sql(app, "SELECT settings FROM users")[0][0])["timezone"]
    tz = ranges.zone(setting)
    start, end = dt.datetime(2026, 9, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 31, 23, 59,
                                                                       59, tzinfo=dt.UTC)
    q = f"start={iso(int(start.timestamp()))}&end={iso(int(end.timestamp()))}"
    # The UTC days of the range's dates in the user's zone, as the daily tables.
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    days = (last - first).days + 1
    assert 100 * days > hitlist.HOURLY_ENTRIES >= 50 * days
    body = api.get(f"/api/v0/stats/hits?{q}&limit=100").get_json()
    per_day: Counter = Counter()
    for path_id, ts in rows:
        per_day[path_id, (dt.datetime.fromtimestamp(ts, dt.UTC).date() - first).days] += 1
    assert body["hits"]
    for h in body["hits"]:
        assert len(h["stats"]) == days
        assert all("hourly" not in e for e in h["stats"])
        want = [{"day": (first + dt.timedelta(days=i)).isoformat(),
                 "daily": per_day[h["path_id"], i]} for i in range(days)]
        assert h["stats"] == with_blocks(want)
        assert h["count"] == sum(e["daily"] for e in want)
        # `max` of the hourly group is the highest daily number here.
        assert h["max"] == max(e["daily"] for e in want)
    assert body["total"] == len(rows)
    # Fewer paths over the same range: hourly numbers, the same counts.
    hourly = api.get(f"/api/v0/stats/hits?{q}&limit=50").get_json()
    assert all(len(e["hourly"]) == 24 for h in hourly["hits"] for e in h["stats"])
    assert [(h["path_id"], h["count"]) for h in hourly["hits"]] == \
        [(h["path_id"], h["count"]) for h in body["hits"]][:50]


def test_too_many_day_entries_is_a_400_that_says_how_to_ask(tmp_path):
    _, api, _ = random_site(tmp_path, 2)
    q = "start=2016-01-01&end=2025-12-31"
    body = assert_error(api.get(f"/api/v0/stats/hits?{q}&limit=100"), 400)
    assert body["error"] == (
        "invalid query parameters: 100 paths over 3653 days would be 365,300 day entries, "
        "more than 100,000; ask for limit=27 or lower (and page with exclude_paths), or a "
        "range of at most 1000 days")
    ok = api.get(f"/api/v0/stats/hits?{q}&limit=27")
    assert ok.status_code == 200
    assert api.get("/api/v0/stats/hits?start=2016-01-01&end=2018-09-26&limit=100") \
        .status_code == 200
    assert_error(api.get("/api/v0/stats/hits?start=2016-01-01&end=2018-09-27&limit=100"), 400)


def test_the_bounds_hold_for_callers_of_the_functions(tmp_path):
    """The dashboard calls the stats functions directly: they refuse the same work."""
    from goatcounter.errors import BadRequest
    from goatcounter.stats import filters, hitlist, totals
    app, _, _ = random_site(tmp_path, 3)
    long = ranges.Range(0, 3653 * 86400)
    longer = ranges.Range(0, 4000 * 86400)
    with app.app_context():
        conn = db.get_db()
        with pytest.raises(BadRequest):
            hitlist.hits(conn, 1, long, filters.ALL, [], 100, "hour")
        with pytest.raises(BadRequest):
            hitlist.hits(conn, 1, longer, filters.ALL, [], 1, "hour")
        with pytest.raises(BadRequest):
            totals.total(conn, 1, longer, filters.ALL)
        assert hitlist.hits(conn, 1, long, filters.ALL, [], 27, "hour")["hits"] == []

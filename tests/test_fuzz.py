"""Fuzzing: schemathesis against the API as GET /api.json describes it, on a running
server; and hypothesis on the hit pipeline, through POST /api/v0/count and GET /count:
a person's pageview on a valid path is stored exactly once and a bot's never, and
whatever a client sends gives at most one stored row or a clean 4xx, never an exception."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goatcounter import create_app
from goatcounter.counting import pending
from goatcounter.public.pixel import GIF
from tests import engines
from tests.conftest import API, NO_LIMITS, UA, make_site, query
from tests.servers import gunicorn

# The hit pipeline, with hypothesis -------------------------------------------------------

RATELIMIT = NO_LIMITS


def long_text(size: int) -> st.SearchStrategy[str]:
    """A character repeated around a length limit, which plain text() rarely reaches."""
    return st.builds(lambda c, n: c * n, st.characters(), st.integers(size - 8, size + 8))


# Any text, a little of it long enough to cross the limits (2048 for paths and
# referrers, 1024 for titles, 512 for user agents).
TEXT = st.one_of(st.text(), st.text(max_size=5), long_text(512), long_text(1024),
                 long_text(2048))
# Sizes as clients send them, as well as anything else.
SIZE = st.one_of(TEXT, st.from_regex(r"\A-?[0-9]{1,6}(,-?[0-9]{1,6}(,[0-9.]{1,4})?)?\Z"))
FIELDS = {"path": TEXT, "title": TEXT, "ref": TEXT, "user_agent": TEXT, "query": TEXT,
          "size": SIZE}


def counts(app: Flask) -> tuple[int, int]:
    return (query(app, "SELECT count(*) FROM hits", drain=False)[0][0],
            query(app, "SELECT count(*) FROM bots", drain=False)[0][0])


FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# What a person's browser sends, known independently of the code under test: browsers'
# user agents, paths that are neither empty, too long nor one of the paths that are
# never counted, and referrers and queries without "//" (which no spam host can match).
PEOPLE = [UA,
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
          " Chrome/131.0.0.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
          " (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"]
BOTS = ["curl/8.5.0", "python-requests/2.31.0", "x",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"]
# Up to 500 characters (2,000 bytes: within every limit): often ASCII or the characters
# of URLs, long at times.
SHORT = st.one_of(st.text(max_size=500),
                  st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
                  st.text(st.sampled_from(" /?&=#%+.:-_aZ09é"), max_size=40),
                  st.builds(lambda c, n: c * n, st.characters(), st.integers(1, 500)))
VALID_PATH = st.builds(lambda t: "/" + t, SHORT).filter(
    lambda p: "favicon.ico" not in p and "servlet" not in p and "<html>" not in p.lower())
NO_SLASHES = SHORT.filter(lambda t: "//" not in t)
VALID_SIZE = st.from_regex(r"\A[0-9]{1,6}(,[0-9]{1,6}(,[0-9.]{1,4})?)?\Z")
PERSON = {"title": SHORT, "ref": NO_SLASHES, "query": NO_SLASHES, "size": VALID_SIZE}


@FUZZ
@given(path=VALID_PATH, fields=st.fixed_dictionaries({}, optional=PERSON),
       ua=st.sampled_from(PEOPLE))
def test_api_count_stores_a_person_on_a_valid_path_once(app, api, path, fields, ua):
    before = counts(app)
    resp = api.post("/api/v0/count", {"hits": [
        {**fields, "path": path, "user_agent": ua, "ip": "81.2.69.160"}]})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    assert resp.get_data() == b'{"status":"ok"}'
    after = counts(app)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)


@FUZZ
@given(fields=st.fixed_dictionaries({}, optional=FIELDS),
       bot=st.one_of(st.sampled_from(BOTS).map(lambda ua: {"user_agent": ua}),
                     st.integers(1, 2**31).map(lambda b: {"bot": b, "user_agent": UA})))
def test_api_count_never_stores_a_bot_as_a_hit(app, api, fields, bot):
    before = counts(app)
    resp = api.post("/api/v0/count", {"hits": [{**fields, **bot, "ip": "81.2.69.160"}]})
    assert resp.status_code in (202, 400), (resp.status_code, resp.get_data(as_text=True))
    after = counts(app)
    assert after[0] == before[0]
    assert after[1] - before[1] == (1 if resp.status_code == 202 else 0)


@FUZZ
@given(fields=st.fixed_dictionaries({}, optional=FIELDS))
def test_api_count_stores_a_hit_or_refuses_it_cleanly(app, api, fields):
    hit = {**fields, "ip": "81.2.69.160"}
    if "user_agent" not in hit:
        hit["user_agent"] = UA
    before = counts(app)
    resp = api.post("/api/v0/count", {"hits": [hit]})
    after = counts(app)
    assert resp.status_code in (202, 400), (resp.status_code, resp.get_data(as_text=True))
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.get_json()
    if resp.status_code == 202:
        assert body == {"status": "ok"}
        # A hit, a bot, or (ignored path, referrer spam) nothing; never more.
        assert (after[0] - before[0], after[1] - before[1]) in ((1, 0), (0, 1), (0, 0))
    else:
        assert set(body) in ({"error"}, {"errors"}), body
        assert after == before


def query_part(value: str | bytes) -> str:
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote_from_bytes(raw, safe="")


# Parameters as count.js sends them, as text or as any bytes (invalid UTF-8 included).
PARAM = st.one_of(TEXT, st.binary(max_size=64))
PIXEL_PARAMS = {"p": PARAM, "t": PARAM, "r": PARAM, "q": PARAM, "s": SIZE, "e": PARAM,
                "b": PARAM, "ns": PARAM}
PIXEL_PERSON = {"t": SHORT, "r": NO_SLASHES, "q": NO_SLASHES, "s": VALID_SIZE}


def pixel(app: Flask, client, site: dict[str, Any], params: dict[str, Any], ua: str,
          method: str):
    """Send a pageview to /count and count what is queued; returns the reply."""
    query = "&".join(f"{k}={query_part(v)}" for k, v in params.items())
    # A header reaches WSGI as latin-1 text of the bytes sent, which were UTF-8.
    header_ua = ua.encode("utf-8", "surrogatepass").decode("latin-1")
    resp = client.open(f"/count?{query}", method=method,
                       headers={"Host": site["cname"], "User-Agent": header_ua},
                       environ_base={"REMOTE_ADDR": "81.2.69.160"})
    assert resp.get_data() == GIF
    # Counting the accepted pageview (later, from the queue) must work too: a hit that
    # fails there would hold up every pageview queued behind it.
    with app.app_context():
        pending.drain()
        assert not pending.drain()
    return resp


@FUZZ
@given(path=VALID_PATH, params=st.fixed_dictionaries({}, optional=PIXEL_PERSON),
       ua=st.sampled_from(PEOPLE), method=st.sampled_from(["GET", "POST"]))
def test_pixel_stores_a_person_on_a_valid_path_once(app, client, site_token, path, params,
                                                    ua, method):
    before = counts(app)
    resp = pixel(app, client, site_token[0], {**params, "p": path}, ua, method)
    assert resp.status_code == 200, resp.headers.get("X-Goatcounter")
    after = counts(app)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)


@FUZZ
@given(params=st.fixed_dictionaries({}, optional=PIXEL_PARAMS),
       bot=st.one_of(st.sampled_from([*BOTS, ""]).map(lambda ua: ({}, ua)),
                     st.integers(150, 153).map(lambda b: ({"b": str(b)}, UA))),
       method=st.sampled_from(["GET", "POST"]))
def test_pixel_never_stores_a_bot_as_a_hit(app, client, site_token, params, bot, method):
    extra, ua = bot
    before = counts(app)
    resp = pixel(app, client, site_token[0], {**params, **extra}, ua, method)
    assert resp.status_code in (200, 400), resp.status_code
    assert counts(app)[0] == before[0]


@FUZZ
@given(params=st.fixed_dictionaries({}, optional=PIXEL_PARAMS),
       ua=st.one_of(st.just(UA), st.text(st.characters(exclude_characters="\r\n"),
                                         max_size=600)),
       method=st.sampled_from(["GET", "POST"]))
def test_pixel_stores_a_hit_or_refuses_it_cleanly(app, client, site_token, params, ua,
                                                   method):
    before = counts(app)
    resp = pixel(app, client, site_token[0], params, ua, method)
    assert resp.status_code in (200, 400), (resp.status_code, resp.get_data())
    after = counts(app)
    if resp.status_code == 400:
        assert resp.headers["X-Goatcounter"]
        assert after == before
    else:
        assert (after[0] - before[0], after[1] - before[1]) in ((1, 0), (0, 1), (0, 0))


@FUZZ
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["hits", "no_sessions", "filter", "path", "size", "ip",
                                       "created_at", "event", "bot", "session", "x"]),
                      children, max_size=4),
    max_leaves=12))
def test_api_count_any_json_is_a_clean_reply(api, body):
    resp = api.post("/api/v0/count", json.dumps(body))
    assert resp.status_code in (202, 400), (resp.status_code, resp.get_data(as_text=True))
    assert resp.headers["Content-Type"].startswith("application/json")


# The API, with schemathesis --------------------------------------------------------------

# Operations that change the site the fuzzing talks through (its name, or a sibling that
# makes the Host header ambiguous): they get a run of their own, after the rest.
SITE_CHANGES = r"^(PUT /api/v0/sites|(POST|PATCH) /api/v0/sites/\{id\})$"
RUNS = {
    "api": (["--exclude-name-regex", SITE_CHANGES], 50),
    # Without the coverage phase: on Python 3.11 it trips over a CPython bug in `ast`
    # while describing its own strategies for the site settings (a schemathesis
    # "Runtime Error", not a reply of ours). Fuzzing still sends those bodies.
    "site-changes": (["--include-name-regex", SITE_CHANGES,
                      "--phases", "examples,fuzzing,stateful"], 15),
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """gunicorn (gunicorn.conf.py, 2 workers) with a site that has data to read."""
    instance = tmp_path_factory.mktemp("fuzz")
    own = engines.own_database()
    app = create_app({"INSTANCE": str(instance), "RATELIMIT": NO_LIMITS, **own})
    site, token = make_site(app, cname="fuzz.example.com")
    api = API(app.test_client(), token, site["cname"])
    hits = [{"path": f"/page/{i}", "title": f"Page {i}", "user_agent": UA, "ip": "81.2.69.160",
             "ref": "https://example.org/", "size": "1920", "query": "utm_campaign=spring"}
            for i in range(20)]
    assert api.post("/api/v0/count", {"hits": hits}).status_code == 202
    assert api.post("/api/v0/export", {}).status_code == 202
    env = {"GOATCOUNTER_RATELIMIT": NO_LIMITS, **engines.env_of(own)}
    with gunicorn(str(instance), workers=2, env=env, access_log="-") as base:
        yield {"base": base, "token": token, "host": site["cname"], "instance": instance}
    # The requests above started this app's background thread: it must not outlive the
    # module (on PostgreSQL it would meet its closed pool at exit, or the next rows).
    app.extensions["goatcounter_pending"].stop()
    if app.config.get("DB_URL"):
        app.extensions["goatcounter_db"].close()


def server_statuses(instance: Path, since: int) -> Counter[str]:
    """Reply statuses in gunicorn's access log after byte `since`, as 2xx, 4xx, 5xx."""
    text = "".join(p.read_bytes()[since:].decode("utf-8", "replace")
                   for p in instance.glob("gunicorn-*.log"))
    return Counter(f"{m[0]}xx" for m in re.findall(r'HTTP/1\.[01]" (\d)\d\d ', text))


@pytest.mark.slow
@pytest.mark.parametrize("run", list(RUNS))
def test_schemathesis(fuzz_server, tmp_path, run):
    args, seconds = RUNS[run]
    report = tmp_path / "report.json"
    log = next(Path(fuzz_server["instance"]).glob("gunicorn-*.log"))
    since = log.stat().st_size
    env = dict(os.environ, SCHEMATHESIS_HOOKS=str(Path(__file__).with_name("fuzz_checks.py")))
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{fuzz_server['base']}/api.json",
        "--header", f"Authorization: Bearer {fuzz_server['token']}",
        "--header", f"Host: {fuzz_server['host']}",
        "--checks", "not_a_server_error,error_replies_are_json",
        "--max-examples", "25", "--max-time", str(seconds), "--workers", "2",
        "--request-timeout", "30", "--generation-database", "none", "--no-color",
        "--report", "json", "--report-json-path", str(report), *args]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=seconds + 240)
    output = result.stdout + result.stderr
    summary = json.loads(report.read_text()) if report.exists() else {}
    statuses = server_statuses(Path(fuzz_server["instance"]), since)
    figures = (f"schemathesis {run}: {summary.get('operations', {}).get('tested')} operations, "
               f"{summary.get('test_cases', {}).get('generated')} test cases, "
               f"{summary.get('running_time', 0):.0f} s; server replies {dict(statuses)}")
    print(figures)
    assert result.returncode == 0, figures + "\n" + output[-6000:]
    assert summary["test_cases"]["generated"] > 50, figures
    assert summary["failures"] == [] and summary["errors"] == [], figures
    assert statuses["5xx"] == 0, figures

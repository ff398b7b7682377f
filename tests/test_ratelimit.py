"""Rate limits (spec section 6, with our keys and defaults from DECISIONS)."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import urllib.error
import urllib.request
import uuid

import pytest

from goatcounter import clock, create_app
from goatcounter.web import ratelimit
from tests import engines
from tests.conftest import API, UA, assert_error, make_site
from tests.servers import gunicorn


def test_parse_limits():
    assert ratelimit.parse("api:60/120, count:none") == {"api": (60, 120), "count": None}
    for bad in ("api", "nope:1/1", "api:1", "api:0/5", "api:x/y"):
        with pytest.raises(ValueError):
            ratelimit.parse(bad)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.6904222, "690.4222ms"), (3593.7, "59m53.7s"), (1.5, "1.5s"), (7200, "2h0m0s"),
    (0, "0s"),
])
def test_go_duration(seconds, text):
    assert ratelimit.go_duration(seconds) == text


@pytest.fixture
def limited(app_config):
    app_config["RATELIMIT"] = "api:3/10"
    app = create_app(app_config)
    site, token = make_site(app)
    _, other = make_site(app, cname="two.example.com", email="two@example.com",
                         parent=site["id"])
    return app, API(app.test_client(), token, site["cname"]), other


def test_headers_count_down_then_429(limited):
    _app, api, _ = limited
    clock.freeze(1_800_000_000.0)
    seen = []
    for _ in range(3):
        resp = api.get("/api/v0/me")
        assert resp.status_code == 200
        seen.append((resp.headers["X-Rate-Limit-Limit"], resp.headers["X-Rate-Limit-Remaining"],
                     resp.headers["X-Rate-Limit-Reset"]))
        clock.advance(1)
    assert seen == [("3", "2", "10"), ("3", "1", "9"), ("3", "0", "8")]
    resp = api.get("/api/v0/me")
    body = assert_error(resp, 429)
    assert body["error"] == "rate limited exceeded; try again in 7s"
    assert resp.headers["Retry-After"] == "7"
    assert resp.headers["X-Rate-Limit-Reset"] == "7"
    assert resp.headers["X-Rate-Limit-Remaining"] == "0"
    clock.advance(7)
    resp = api.get("/api/v0/me")
    assert resp.status_code == 200
    assert resp.headers["X-Rate-Limit-Remaining"] == "2"


def test_retry_after_only_on_429(limited):
    _, api, _ = limited
    assert "Retry-After" not in api.get("/api/v0/me").headers


def test_each_key_has_its_own_bucket(limited):
    _, api, other = limited
    clock.freeze(1_800_000_000.0)
    for _ in range(3):
        api.get("/api/v0/me")
    assert api.get("/api/v0/me").status_code == 429
    api2 = API(api.client, other, api.host)
    resp = api2.get("/api/v0/me")
    assert resp.status_code == 200
    assert resp.headers["X-Rate-Limit-Remaining"] == "2"


def test_failed_requests_use_the_bucket_too(limited):
    _, api, _ = limited
    clock.freeze(1_800_000_000.0)
    anon = API(api.client, None, api.host)
    for _ in range(3):
        resp = anon.get("/api/v0/me")
        assert resp.status_code == 401
        assert "X-Rate-Limit-Remaining" in resp.headers
    assert anon.get("/api/v0/doesnt-exist").status_code == 429


def test_buckets_by_path(app_config):
    app_config["RATELIMIT"] = "api:2/10,api-count:5/60,export:none"
    app = create_app(app_config)
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    clock.freeze(1_800_000_000.0)
    assert api.get("/api/v0/me").headers["X-Rate-Limit-Limit"] == "2"
    # Every API path is in the api bucket, not only /me.
    paths = api.get("/api/v0/paths")
    assert (paths.headers["X-Rate-Limit-Limit"], paths.headers["X-Rate-Limit-Remaining"]) == \
        ("2", "0")
    # /api/v0/count has its own bucket (any method: GET gets a 405 but still counts).
    assert api.get("/api/v0/count").headers["X-Rate-Limit-Limit"] == "5"
    # Not API paths: no limit, no headers, nothing spent.
    for path in ("/api.json", "/count.js", "/apiv0/me"):
        assert "X-Rate-Limit-Limit" not in api.get(path).headers, path
    assert api.get("/api/v0/me").status_code == 429


@pytest.mark.parametrize(("path", "name"), [
    ("/api/v0/me", "api"), ("/api/v0/stats/hits", "api"), ("/api/v0/export/1", "api"),
    ("/api/v0/count", "api-count"), ("/api/v0/export", "export"), ("/api/", "api"),
    ("/api.json", None), ("/count", None), ("/count.js", None), ("/", None), ("/api", None),
])
def test_bucket(path, name):
    assert ratelimit.bucket(path) == name


def test_a_limit_turned_off_still_sends_the_headers(app_config):
    """goatpie reads Remaining and Reset on every export and stores nothing without
    them; with a limit off they say 'plenty left, no wait'."""
    app_config["RATELIMIT"] = "api:none,api-count:none,export:none,auth:none"
    app = create_app(app_config)
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    for resp in (api.post("/api/v0/export"), api.get("/api/v0/me"),
                 api.post("/api/v0/count", {"hits": [{"path": "/x", "session": "s"}]}),
                 api.get("/api/v0/nope"), API(api.client, "bogus", api.host).get("/api/v0/me")):
        assert resp.headers["X-Rate-Limit-Limit"] == str(ratelimit.UNLIMITED)
        assert resp.headers["X-Rate-Limit-Remaining"] == str(ratelimit.UNLIMITED)
        assert resp.headers["X-Rate-Limit-Reset"] == "0"
        assert "Retry-After" not in resp.headers


def test_refused_before_the_limiter_shows_the_bucket_without_spending(limited):
    """A 415 (and 413, and a redirect) is refused before the limiter, as upstream: it
    spends nothing, but its reply still has the bucket's headers."""
    _, api, _ = limited
    clock.freeze(1_800_000_000.0)
    assert api.get("/api/v0/me").headers["X-Rate-Limit-Remaining"] == "2"
    clock.advance(3)
    resp = api.post("/api/v0/test", "{}", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert (resp.headers["X-Rate-Limit-Limit"], resp.headers["X-Rate-Limit-Remaining"],
            resp.headers["X-Rate-Limit-Reset"]) == ("3", "2", "7")
    slash = api.get("/api/v0/me/")
    assert slash.status_code == 301
    assert slash.headers["X-Rate-Limit-Remaining"] == "2"
    assert api.get("/api/v0/me").headers["X-Rate-Limit-Remaining"] == "1"


# Keys: the token's id, whatever the header looks like -----------------------------------

def basic(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def test_basic_auth_with_any_user_name_is_the_same_bucket(limited):
    _, api, _ = limited
    clock.freeze(1_800_000_000.0)
    for _ in range(3):
        assert api.get("/api/v0/me").status_code == 200
    for user in ("u1", "u2", "", "someone-else"):
        resp = api.get("/api/v0/me", headers={"Authorization": basic(user, api.token)})
        assert_error(resp, 429)
    spaced = api.get("/api/v0/me", headers={"Authorization": f"  Bearer   {api.token} "})
    assert spaced.status_code == 429


def test_exports_are_limited_per_token_too(app_config):
    app_config["RATELIMIT"] = "export:2/3600"
    app = create_app(app_config)
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    clock.freeze(1_800_000_000.0)
    assert [api.post("/api/v0/export").status_code for _ in range(2)] == [202, 202]
    for user in ("u1", "u2", "u3"):
        resp = api.post("/api/v0/export", headers={"Authorization": basic(user, token)})
        assert_error(resp, 429)


def test_made_up_tokens_are_limited_per_client_address(app_config):
    app_config["RATELIMIT"] = "api:100/10,auth:3/10"
    app = create_app(app_config)
    site, token = make_site(app)
    client = app.test_client()
    clock.freeze(1_800_000_000.0)

    def get(tok: str, ip: str = "203.0.113.5"):
        return API(client, tok, site["cname"]).get("/api/v0/me",
                                                   environ_base={"REMOTE_ADDR": ip})

    statuses = [get(f"bogus-{i}").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert get("bogus-x").headers["X-Rate-Limit-Limit"] == "3"
    # Formats that can't be read at all count the same.
    resp = API(client, None, site["cname"]).get(
        "/api/v0/me", headers={"Authorization": "Token x"},
        environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert resp.status_code == 429
    # Someone else with a valid token, even from the same address, is served.
    ok = get(token)
    assert ok.status_code == 200 and ok.headers["X-Rate-Limit-Limit"] == "100"
    # Another address has its own count; an IPv6 client its whole /64.
    assert get("bogus-y", "198.51.100.7").status_code == 401
    for i in range(3):
        assert get("bogus-z", f"2001:db8:1:2::{i + 1}").status_code == 401
    assert get("bogus-z", "2001:db8:1:2:ffff::9").status_code == 429
    assert get("bogus-z", "2001:db8:1:3::1").status_code == 401
    keys = rows_of(app)
    assert not any("bogus" in k for k, _, _ in keys), keys
    assert sum(1 for k, _, _ in keys if "/auth:" in k) == 4, keys


def rows_of(app) -> list[tuple[str, int, float]]:
    path = ratelimit.storage_uri(app).removeprefix("sqlite://")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [tuple(r) for r in conn.execute("SELECT key, count, expires FROM ratelimits")]


def test_failed_auth_counts_in_the_path_bucket_when_auth_is_off(app_config):
    app_config["RATELIMIT"] = "api:2/10,auth:none"
    app = create_app(app_config)
    site, _ = make_site(app)
    api = API(app.test_client(), "bogus", site["cname"])
    clock.freeze(1_800_000_000.0)
    assert [api.get("/api/v0/me").status_code for _ in range(3)] == [401, 401, 429]


def test_the_key_is_the_token_id(limited):
    app, api, _ = limited
    api.get("/api/v0/me")
    (key,) = [k for k, _, _ in rows_of(app)]
    assert key.split("/")[2] == "token:1", key


# The SQLite storage --------------------------------------------------------------------

@pytest.fixture
def storage(tmp_path) -> ratelimit.SQLiteStorage:
    return ratelimit.SQLiteStorage("sqlite://" + str(tmp_path / "limits.sqlite3"))


def test_a_counter_ends_exactly_at_its_expiry(storage):
    clock.freeze(1_800_000_000.0)
    assert storage.incr("k", 10) == 1
    assert storage.incr("k", 10) == 2
    storage.forget_request()
    clock.advance(9.5)
    assert (storage.get("k"), storage.get_expiry("k")) == (2, 1_800_000_010.0)
    clock.advance(0.5)
    storage.forget_request()
    assert (storage.get("k"), storage.get_expiry("k")) == (0, 1_800_000_010.0)
    assert storage.incr("k", 10) == 1


def test_clear_forgets_the_counter_at_once(storage):
    storage.incr("k", 10)
    storage.incr("k", 10)
    storage.clear("k")
    # Without forget_request(): the value remembered for the headers must go too.
    assert storage.get("k") == 0
    assert storage.incr("k", 10) == 1


def test_purge_deletes_only_expired_counters(storage):
    clock.freeze(1_800_000_000.0)
    storage.incr("old", 5)
    storage.incr("live", 3600)
    storage.incr("live", 3600)
    clock.advance(5)
    assert storage.purge() == 1
    storage.forget_request()
    assert storage.get("live") == 2
    assert storage.get("old") == 0
    assert [r[0] for r in storage._conn().execute("SELECT key FROM ratelimits")] == ["live"]


def test_the_store_deletes_expired_counters_as_it_goes(storage, monkeypatch):
    monkeypatch.setattr(ratelimit.SQLiteStorage, "PURGE_EVERY", 10)
    clock.freeze(1_800_000_000.0)
    for i in range(9):
        storage.incr(f"client-{i}", 1)
    clock.advance(2)
    storage.incr("now", 1)
    assert [r[0] for r in storage._conn().execute("SELECT key FROM ratelimits")] == ["now"]


def test_maintenance_keeps_live_limits(app_config):
    app_config["RATELIMIT"] = "api:2/3600"
    app = create_app(app_config)
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    assert [api.get("/api/v0/me").status_code for _ in range(3)] == [200, 200, 429]
    result = app.test_cli_runner().invoke(args=["db", "maintain"])
    assert result.exit_code == 0, result.output
    assert api.get("/api/v0/me").status_code == 429


@pytest.mark.parametrize(("left", "seconds"), [(-5.0, 0), (-0.4, 0), (0.0, 0), (1.4, 1),
                                                (1.6, 2), (119.5, 120)])
def test_seconds_left(left, seconds):
    clock.freeze(1_800_000_000.0)
    assert ratelimit._seconds_left(1_800_000_000.0 + left) == seconds


# The pixel's limit ----------------------------------------------------------------------

def test_the_pixel_429_has_retry_after(app_config):
    app_config["RATELIMIT"] = "count:1/10"
    app = create_app(app_config)
    site, _ = make_site(app)
    client = app.test_client()
    clock.freeze(1_800_000_000.0)

    def get():
        return client.get("/count?p=/x", headers={"Host": site["cname"], "User-Agent": UA},
                          environ_base={"REMOTE_ADDR": "203.0.113.5"})

    first = get()
    assert first.status_code == 200
    assert "Retry-After" not in first.headers
    clock.advance(4)
    second = get()
    assert second.status_code == 429
    assert second.headers["Retry-After"] == second.headers["X-Rate-Limit-Reset"] == "6"
    assert second.get_json() == {"error": "rate limited exceeded; try again in 6s"}


def test_the_pixel_counters_keep_their_size_whatever_the_user_agent(app_config):
    app_config["RATELIMIT"] = "count:5/10"
    app = create_app(app_config)
    site, _ = make_site(app)
    client = app.test_client()
    for n in range(3):
        client.get("/count?p=/x", environ_base={"REMOTE_ADDR": "203.0.113.5"},
                   headers={"Host": site["cname"], "User-Agent": UA + "x" * 5000 * n})
    shared = app.extensions["goatcounter_counters"]
    assert os.path.getsize(shared.path) == shared.size
    # The pixel's counters are not in the SQLite file.
    assert rows_of(app) == []


def test_the_pixel_limit_counts_per_address_and_user_agent(app_config):
    app_config["RATELIMIT"] = "count:2/10"
    app = create_app(app_config)
    site, _ = make_site(app)
    client = app.test_client()
    clock.freeze(1_800_000_000.0)

    def get(ip, ua=UA):
        return client.get("/count?p=/x", headers={"Host": site["cname"], "User-Agent": ua},
                          environ_base={"REMOTE_ADDR": ip})

    assert [get("203.0.113.5").status_code for _ in range(3)] == [200, 200, 429]
    assert get("203.0.113.6").status_code == 200
    assert get("203.0.113.5", UA + " other").status_code == 200
    first = get("203.0.113.7")
    assert first.headers["X-Rate-Limit-Limit"] == "2"
    assert first.headers["X-Rate-Limit-Remaining"] == "1"
    assert first.headers["X-Rate-Limit-Reset"] == "10"
    clock.advance(10)
    assert get("203.0.113.5").status_code == 200


def _get(url: str, token: str) -> tuple[int, dict[str, str], dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}",
                                               "Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_limit_holds_across_gunicorn_workers(tmp_path):
    """The 61st request of one key inside 120 s gets a 429 whichever of 3 workers serves
    it; another key is unaffected."""
    instance = str(tmp_path / "instance")
    app = create_app({"INSTANCE": instance})
    site, token_a = make_site(app, cname="127.0.0.1")
    _, token_b = make_site(app, cname="b.example.com", email="b@example.com",
                           parent=site["id"])
    with gunicorn(instance, workers=3) as base:
        statuses = [_get(base + "/api/v0/me", token_a)[0] for _ in range(60)]
        assert statuses == [200] * 60
        status, headers, body = _get(base + "/api/v0/me", token_a)
        assert status == 429, body
        assert body["error"].startswith("rate limited exceeded; try again in ")
        assert 0 <= int(headers["X-Rate-Limit-Reset"]) <= 120
        assert headers["Retry-After"] == headers["X-Rate-Limit-Reset"]
        status, headers, _ = _get(base + "/api/v0/me", token_b)
        assert status == 200
        assert headers["X-Rate-Limit-Remaining"] == "59"


def test_the_pixel_limit_is_shared_through_redis(app_config):
    """With RATELIMIT_STORAGE=redis:// the pixel's limit lives in Redis, not in the file
    of one host: two apps (two hosts) share it."""
    app_config["RATELIMIT"] = "count:2/30"
    app_config["RATELIMIT_STORAGE"] = engines.redis_url()
    one = create_app(app_config)
    site, _ = make_site(one)
    two = create_app(app_config)
    assert "goatcounter_counters" not in one.extensions
    ua = f"{UA} {uuid.uuid4()}"  # keys of its own in the shared Redis

    def get(app):
        return app.test_client().get("/count?p=/x", environ_base={"REMOTE_ADDR": "203.0.113.9"},
                                     headers={"Host": site["cname"], "User-Agent": ua})

    assert [get(one).status_code, get(two).status_code, get(one).status_code] == [200, 200, 429]
    assert get(two).status_code == 429

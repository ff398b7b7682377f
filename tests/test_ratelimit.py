"""Rate limits (spec section 6, with our keys and defaults from DECISIONS)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from goatcounter import clock, create_app
from goatcounter.web import ratelimit
from tests.conftest import API, assert_error, make_site
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
    # /api/v0/count has its own bucket (any method: GET gets a 405 but still counts).
    assert api.get("/api/v0/count").headers["X-Rate-Limit-Limit"] == "5"
    # export is turned off: no headers at all.
    assert "X-Rate-Limit-Limit" not in api.post("/api/v0/export").headers


def test_415_is_refused_before_the_limiter(limited):
    _, api, _ = limited
    resp = api.post("/api/v0/test", "{}", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert "X-Rate-Limit-Limit" not in resp.headers


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

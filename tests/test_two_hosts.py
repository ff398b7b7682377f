"""Two app servers behind one PostgreSQL and one Redis, as deploy/two-hosts/ sets them up:
two gunicorns on two loopback ports, each with an instance folder (spool, exports) of its
own, counting through both at once and reading from either."""
from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from goatcounter import create_app
from goatcounter.accounts import tokens
from tests import engines
from tests.conftest import UA, make_site
from tests.servers import gunicorn

pytestmark = pytest.mark.postgresql

BATCHES, PER_BATCH, PIXELS = 24, 25, 12


def call(base: str, token: str | None, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    h = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def hosts(tmp_path: Path):
    url = engines.separate_database()
    redis_url = engines.redis_url()
    import redis
    redis.Redis.from_url(redis_url).flushdb()
    env = {"GOATCOUNTER_DB": url, "GOATCOUNTER_RATELIMIT_STORAGE": redis_url,
           # Both hosts must share the secret: it keys the visitor sessions.
           "GOATCOUNTER_SECRET_KEY": "two-hosts-secret"}
    setup = create_app({"INSTANCE": str(tmp_path / "setup"), "DB": url,
                        "SECRET_KEY": "two-hosts-secret", "RATELIMIT_STORAGE": "memory"})
    site, counting = make_site(setup, cname="127.0.0.1")
    _, reading = make_site(setup, cname="other.example.com", perms=tokens.PERM_ALL)
    setup.extensions["goatcounter_db"].close()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with gunicorn(str(tmp_path / "a"), workers=2, env=env) as a, \
            gunicorn(str(tmp_path / "b"), workers=2, env=env) as b:
        yield {"a": a, "b": b, "token": counting, "other": reading, "url": url,
               "site": site, "tmp": tmp_path}
    engines.drop_database(url)


def _total(base: str, token: str) -> dict[str, Any]:
    status, _, body = call(base, token, "GET",
                           "/api/v0/stats/total?start=2026-11-01&end=2026-12-31")
    assert status == 200, body
    return json.loads(body)


def test_two_hosts_count_and_read_as_one(hosts):
    a, b, token = hosts["a"], hosts["b"], hosts["token"]
    statuses: list[int] = []

    def client(n: int) -> None:
        for i in range(BATCHES // 4):
            base = (a, b)[(n + i) % 2]
            hits = [{"path": f"/p{(n * 7 + j) % 9}", "session": f"visitor-{n}-{j % 5}",
                     "created_at": "2026-11-20T10:00:00Z"} for j in range(PER_BATCH)]
            statuses.append(call(base, token, "POST", "/api/v0/count", {"hits": hits},
                                 {"Idempotency-Key": f"c{n}-{i}"})[0])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    # Pixels on both hosts while the batches go in.
    for i in range(PIXELS):
        base = (a, b)[i % 2]
        req = urllib.request.Request(
            f"{base}/count?p=/pixel&t=Pixel&r=&s=1920,1080,1&rnd={i}",
            headers={"User-Agent": UA.replace("131.0", f"{100 + i}.0"), "Host": "127.0.0.1"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
    for t in threads:
        t.join(120)
    assert statuses == [202] * BATCHES

    # A batch retried on the other host is answered again, not counted again.
    status, headers, _ = call(b, token, "POST", "/api/v0/count", {"hits": [{"path": "/x"}]},
                              {"Idempotency-Key": "c0-0"})
    assert status == 202 and headers.get("Idempotent-Replayed") == "true"

    expected = BATCHES * PER_BATCH + PIXELS
    # Each host counts its own spool right after its replies; the other host's reads see
    # those pageviews once it has (well within a second).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counted = engines.query_url(hosts["url"], "SELECT sum(pageviews) FROM hit_counts")
        if counted[0][0] == expected:
            break
        time.sleep(0.2)
    ta, tb = _total(a, token), _total(b, token)
    assert ta == tb
    # Visits: the first pageview of each path in each session (a pixel's own user agent
    # makes its own session).
    visits = {(n, j % 5, (n * 7 + j) % 9) for n in range(4) for j in range(PER_BATCH)}
    assert ta["total"] == len(visits) + PIXELS
    rows = engines.query_url(hosts["url"], "SELECT count(*), count(DISTINCT id) FROM hits")
    assert tuple(rows[0]) == (expected, expected)
    hourly = engines.query_url(hosts["url"], "SELECT sum(pageviews) FROM hit_counts")
    assert hourly[0][0] == expected

    # An export from either host has every hit once, in id order.
    status, _, body = call(a, token, "POST", "/api/v0/export", {})
    assert status == 202, body
    export = json.loads(body)
    assert export["num_rows"] == expected
    status, _, data = call(a, token, "GET", f"/api/v0/export/{export['id']}/download")
    assert status == 200
    assert len(gzip.decompress(data).decode().splitlines()) == expected + 1
    # The other host, whose folder never had the file, writes the same one again.
    status, _, there = call(b, token, "GET", f"/api/v0/export/{export['id']}/download")
    assert status == 200
    assert there == data


def test_rate_limits_hold_across_hosts(hosts):
    a, b, token = hosts["a"], hosts["b"], hosts["other"]
    sent = 0
    while True:
        status, headers, _ = call(a, token, "GET", "/api/v0/me",
                                  headers={"Host": "other.example.com"})
        assert status == 200
        sent += 1
        if headers["X-Rate-Limit-Remaining"] == "0":
            break
        assert sent < 61
    assert sent == 60
    status, headers, body = call(b, token, "GET", "/api/v0/me",
                                 headers={"Host": "other.example.com"})
    assert status == 429, body
    assert int(headers["X-Rate-Limit-Reset"]) > 0

"""Counting against a real gunicorn with several workers: what one worker accepted,
another must honour (retries, sessions), and the pixel and API rules hold there too."""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from goatcounter import create_app
from goatcounter.counting import spool
from goatcounter.public.pixel import GIF
from tests import engines
from tests.conftest import NO_LIMITS, UA, make_site, query
from tests.servers import gunicorn
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    instance = str(tmp_path_factory.mktemp("count-gunicorn"))
    own = engines.own_database()
    app = create_app({"INSTANCE": instance, **own})
    site, token = make_site(app, cname="127.0.0.1", settings={"ignore_ips": "203.0.113.7"})
    with gunicorn(instance, workers=3,
                  env={"GOATCOUNTER_RATELIMIT": NO_LIMITS, **engines.env_of(own)}) as base:
        yield {"base": base, "token": token, "app": app, "site": site}


def call(server, method: str, path: str, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    h = {"Authorization": f"Bearer {server['token']}", "Content-Type": "application/json",
         "Connection": "close", **(headers or {})}
    req = urllib.request.Request(server["base"] + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def stored(server, path: str) -> int:
    return query(server["app"], "SELECT count(*) FROM hits h JOIN paths p ON p.id = h.path_id"
                 " WHERE p.path = ?", (path,))[0][0]


def test_a_retried_batch_counts_once_whichever_worker_gets_it(server):
    body = {"no_sessions": True, "hits": [{"path": "/retried"}]}
    replies = [call(server, "POST", "/api/v0/count", body, {"Idempotency-Key": "r-1"})
               for _ in range(6)]
    assert [r[0] for r in replies] == [202] * 6
    assert sum(1 for r in replies if r[1].get("Idempotent-Replayed") == "true") == 5
    assert stored(server, "/retried") == 1


def test_simultaneous_retries_count_once(server):
    body = {"no_sessions": True, "hits": [{"path": "/raced"}]}
    out: list[int] = []
    threads = [threading.Thread(target=lambda: out.append(
        call(server, "POST", "/api/v0/count", body, {"Idempotency-Key": "race"})[0]))
        for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [202] * 8
    assert stored(server, "/raced") == 1


def test_a_visit_spans_workers(server):
    for _ in range(4):
        status, _, _ = call(server, "POST", "/api/v0/count", {"hits": [
            {"path": "/visit", "session": "same-visitor"}]})
        assert status == 202
    conn = engines.connect(server["app"])
    flags = [r[0] for r in conn.execute(
        "SELECT first_visit FROM hits h JOIN paths p ON p.id = h.path_id"
        " WHERE p.path = '/visit' ORDER BY h.id")]
    assert flags == [1, 0, 0, 0]


def test_api_rules_hold(server):
    status, headers, body = call(server, "POST", "/api/v0/count", {"hits": [
        {"path": "/ok", "session": "a"}, {"path": "", "session": "a"},
        {"path": "/ignored", "ip": "203.0.113.7", "user_agent": UA}]})
    assert status == 400
    assert json.loads(body) == {"errors": {
        "1": "path: must be set, must be longer than 1 characters."}}
    assert headers["X-Goatcounter-Filter"] == "2"
    assert stored(server, "/ok") == 1 and stored(server, "/ignored") == 0


def test_pixel_rules_hold(server):
    def pixel(query: str, ua: str = UA):
        req = urllib.request.Request(server["base"] + "/count?" + query,
                                     headers={"User-Agent": ua, "Connection": "close"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.headers.get("X-Goatcounter"), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("X-Goatcounter"), err.read()

    assert pixel("p=/pixel-ok&t=T&s=1280") == (200, None, GIF)
    assert pixel("p=/pixel-bad&b=5") == (400, "wrong value: b=5", GIF)
    assert pixel("p=/pixel-bot", "curl/8.5.0")[0] == 200
    assert stored(server, "/pixel-ok") == 1
    assert stored(server, "/pixel-bad") == stored(server, "/pixel-bot") == 0


def _holders(lock: str) -> list[int]:
    """Pids of the processes that have `lock` open (only the counting process keeps it
    open: the others close it when they find it taken)."""
    out = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == lock for fd in fd_dir.iterdir()):
                out.append(int(fd_dir.parent.name))
    return out


def _counted(app, prefix: str) -> int:
    """Hits stored under paths starting with `prefix`, read without counting anything
    here (this process must not do the servers' counting)."""
    return query(app, "SELECT count(*) FROM hits h JOIN paths p ON p.id = h.path_id"
                      " WHERE p.path LIKE ?", (prefix + "%",), drain=False)[0][0]


def _send(base: str, prefix: str, n: int) -> int:
    """n pageviews from 4 threads; how many were acknowledged."""
    acked = []

    def one(i: int) -> None:
        req = urllib.request.Request(f"{base}/count?p={prefix}{i}",
                                     headers={"User-Agent": UA, "Connection": "close"})
        with contextlib.suppress(OSError), urllib.request.urlopen(req, timeout=30) as resp:
            if resp.status == 200:
                acked.append(i)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))
    return len(acked)


def test_one_worker_counts_and_another_takes_over_when_it_dies(tmp_path):
    """Of several workers one counts after its replies (it holds the spool's counting
    lock), the others' pageviews included; killed, it is succeeded, and nothing that was
    acknowledged is left uncounted."""
    instance = str(tmp_path)
    own = engines.own_database()
    app = create_app({"INSTANCE": instance, **own})
    make_site(app, cname="127.0.0.1")
    lock = os.path.join(app.config["DB_PATH"] + "-pending", spool.COUNTER_LOCK)
    with gunicorn(instance, workers=2,
                  env={"GOATCOUNTER_RATELIMIT": NO_LIMITS, **engines.env_of(own)}) as base:
        first = _send(base, "/before/", 300)
        wait_until(lambda: _counted(app, "/before/") == first, "the first pageviews counted", 15)
        leaders = _holders(lock)
        assert len(leaders) == 1
        os.kill(leaders[0], signal.SIGKILL)
        after = _send(base, "/after/", 300)
        assert after > 250
        wait_until(lambda: _counted(app, "/after/") == after, "the later pageviews counted", 15)
        # The lock is taken again by a worker on one of its next replies.
        wait_until(lambda: _send(base, "/later/", 4) > 0 and len(_holders(lock)) == 1,
                   "a new worker holding the counting lock", 15)
        assert _holders(lock) != leaders
    assert _counted(app, "/before/") == first


def test_the_pixel_limit_is_one_count_across_workers(tmp_path):
    # Each worker writes its own region of the counters and reads all of them: a client
    # whose pageviews land on several workers still gets the limit once, not per worker.
    instance = str(tmp_path)
    own = engines.own_database()
    app = create_app({"INSTANCE": instance, **own})
    make_site(app, cname="127.0.0.1")
    limits = NO_LIMITS.replace("count:none", "count:20/600")
    env = {"GOATCOUNTER_RATELIMIT": limits, "GOATCOUNTER_TRUSTED_PROXIES": "127.0.0.1",
           **engines.env_of(own)}
    with gunicorn(instance, workers=3, env=env) as base:
        host, port = base.removeprefix("http://").split(":")

        def begin(i: int) -> socket.socket:
            # A client behind the proxy (loopback itself is never limited); the request
            # is left unfinished, so the worker that took it can take no other.
            conn = socket.create_connection((host, int(port)), timeout=30)
            conn.sendall(f"GET /count?p=/limited-{i} HTTP/1.1\r\nHost: {host}\r\n"
                         f"User-Agent: {UA}\r\nX-Forwarded-For: 198.51.100.9\r\n"
                         "Connection: close\r\n".encode())
            return conn

        def finish(conn: socket.socket) -> int:
            conn.sendall(b"\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
            conn.close()
            return int(reply.split(b" ", 2)[1])

        first = []
        for round_ in range(4):
            held = []
            for i in range(3):
                held.append(begin(round_ * 3 + i))
                time.sleep(0.2)  # taken by an idle worker meanwhile
            first += [finish(conn) for conn in held]
        # Then one at a time across the limit, so that no two counts meet at its edge.
        then = [finish(begin(i)) for i in range(12, 24)]
        assert first == [200] * 12
        assert then == [200] * 8 + [429] * 4
        wait_until(lambda: _counted(app, "/limited-") == 20, "the 20 pageviews counted")
    workers = query(app, "SELECT count(DISTINCT worker) FROM live_log WHERE path LIKE ?",
                    ("/limited-%",), drain=False)[0][0]
    assert workers >= 2

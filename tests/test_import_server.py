"""An import through the settings page against a real gunicorn: the upload's request
answers before the import is done, /count keeps answering while it runs, and killing
the workers halfway loses and doubles nothing (bench/import_page.py measures it with
1,000,000 rows)."""
from __future__ import annotations

import gzip
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from bench.common import workers_of
from tests.browser import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer, start_server
from tests.conftest import query
from tests.test_import_runs import HEADER, row

pytestmark = pytest.mark.slow

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


def export(rows: int) -> bytes:
    return gzip.compress((HEADER + "".join(row(i) for i in range(rows))).encode())


def signed_in(server: LiveServer) -> requests.Session:
    session = requests.Session()
    page = session.get(server.url + "/user/new", timeout=10).text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    resp = session.post(server.url + "/user/requestlogin", allow_redirects=False, timeout=30,
                        data={"csrf": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert resp.status_code == 303
    return session


def start_import(server: LiveServer, session: requests.Session, data: bytes) -> str:
    page = session.get(server.url + "/settings/export", timeout=10).text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    resp = session.post(server.url + "/settings/export/import", allow_redirects=False,
                        timeout=60, data={"csrf": token},
                        files={"csv": ("big.csv.gz", data, "application/gzip")})
    assert resp.status_code == 303, resp.text[:500]
    return server.url + resp.headers["Location"]


def progress(session: requests.Session, url: str) -> dict:
    return session.get(url, headers={"Accept": "application/json"}, timeout=30).json()


def master_of(server: LiveServer) -> int:
    """The gunicorn master serving `server` (its command line names the port)."""
    port = server.url.rsplit(":", 1)[1]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"gunicorn" in b" ".join(cmd) and f"127.0.0.1:{port}".encode() in cmd:
                return int(entry)
    raise AssertionError("no gunicorn master found")


@pytest.fixture
def server(tmp_path) -> LiveServer:
    env = {"GOATCOUNTER_RATELIMIT": "count:none,login:none",
           "GOATCOUNTER_IMPORT_LEASE_SECONDS": "3"}
    with start_server(tmp_path / "instance", workers=2, env=env) as live:
        yield live


def test_count_answers_while_an_import_runs(server):
    session = signed_in(server)
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def pixels() -> None:
        with requests.Session() as s:
            i = 0
            while not stop.is_set():
                i += 1
                status = s.get(server.url + "/count", params={"p": f"/live/{i}"},
                               headers={"User-Agent": UA}, timeout=30).status_code
                answers.append((time.monotonic(), status))

    thread = threading.Thread(target=pixels, daemon=True)
    thread.start()
    try:
        sent = time.monotonic()
        url = start_import(server, session, export(20_000))
        answered = time.monotonic()
        first = progress(session, url)
        # The request came back with the import still to do.
        assert first["state"] in ("queued", "running") and first["done"] < 20_000
        running: list[float] = []
        deadline = time.monotonic() + 240
        while (state := progress(session, url))["state"] not in ("done", "failed"):
            if 0 < state["done"] < 20_000:
                running.append(time.monotonic())
            assert time.monotonic() < deadline, state
            time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert state["state"] == "done" and state["imported"] == 20_000, state
    assert running, "the import's progress was never seen between its start and its end"
    # /count answered all along, also while the import was halfway.
    assert answers and all(status == 200 for _, status in answers)
    assert any(running[0] <= t <= running[-1] for t, _ in answers)
    assert answered - sent < 60
    pixels_sent = len(answers)
    rows = query(server.app(), "SELECT count(*) FROM hits")[0][0]
    assert rows == 20_000 + pixels_sent, server.log()


def test_killed_workers_leave_the_import_to_the_new_ones(server):
    session = signed_in(server)
    url = start_import(server, session, export(30_000))
    deadline = time.monotonic() + 120
    while progress(session, url)["done"] < 3000:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    master = master_of(server)
    for pid in workers_of(master):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 240
    while (state := progress(session, url))["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert (state["state"], state["done"], state["imported"]) == ("done", 30_000, 30_000)
    app = server.app()
    assert query(app, "SELECT count(*), count(DISTINCT path_id) FROM hits")[0][:] == \
        (30_000, 30_000)

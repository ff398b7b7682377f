"""The live log across processes: `goatcounter tail` and /live beside a real gunicorn, a
page with count.js in Chromium, entries of two workers in one ordered tail, and
`goatcounter serve --dev`."""
from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import (
    PHONE,
    USER_AGENT,
    LiveServer,
    console_errors,
    new_context,
    sign_in,
)
from tests.servers import ROOT, free_port
from tests.test_browser import PageServer

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


class Output:
    """The lines a process prints, read by a thread as they come."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def close(self) -> None:
        """Once the process has ended: the rest of its output, and the pipe closed."""
        self.reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        while not self.lines.empty():
            self.seen.append(self.lines.get())

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(self, check: Callable[[str], Any], timeout: float = 20) -> Any:
        """The first value of check(line) that is true, for lines not looked at yet."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("not printed in time; so far:\n" + "\n".join(self.seen[-40:]))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            found = check(line)
            if found:
                return found


@contextlib.contextmanager
def command(args: list[str], instance: Path) -> Iterator[Output]:
    """`python -m goatcounter ARGS` on the instance, stopped with Ctrl-C at the end."""
    env = {**os.environ, "GOATCOUNTER_INSTANCE": str(instance), "PYTHONUNBUFFERED": "1"}
    # Ctrl-C as a terminal sends it, even when the tests run in the background (whose
    # children start with SIGINT ignored); in a process group of its own, so that
    # whatever it started goes too if it has to be killed.
    proc = subprocess.Popen([sys.executable, "-m", "goatcounter", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_default_sigint)
    out = Output(proc)
    try:
        yield out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tail_json(server: LiveServer, *extra: str) -> contextlib.AbstractContextManager[Output]:
    # --since: whatever comes once the command runs is printed, started or not.
    return command(["tail", "--json", "--since", "600", *extra], server.instance)


def entry_of(path: str) -> Callable[[str], dict | None]:
    def check(line: str) -> dict | None:
        entry = json.loads(line)
        return entry if entry["path"] == path else None
    return check


def get(url: str, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, headers={"User-Agent": UA, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_page_with_count_js_shows_in_tail_and_on_live(browser, live_server, screenshots):
    """The developer's loop: a local page with the snippet, `goatcounter tail --json` in a
    terminal and /live in a tab; the pageview shows in both within 2 seconds."""
    watcher = new_context(browser).new_page()
    sign_in(watcher, live_server)
    watcher.goto(live_server.url + "/live")
    watcher.wait_for_selector("[data-live-status]:has-text('Live:')")
    with tail_json(live_server) as tail, PageServer(count_host=live_server.host).run() as site:
        # The clock starts once the tail runs (starting Python is not what is measured).
        assert get(live_server.url + "/count?p=/tail-is-up") == 200
        tail.wait_for(entry_of("/tail-is-up"))
        visitor = new_context(browser).new_page()
        with visitor.expect_request(lambda r: "/count?" in r.url) as sent:
            visitor.goto(site.url + "/dev.html")
        assert "p=%2Fdev.html" in sent.value.url
        start = time.monotonic()
        entry = tail.wait_for(entry_of("/dev.html"))
        in_tail = time.monotonic() - start
        watcher.locator(".live-path", has_text="/dev.html").wait_for()
        on_page = time.monotonic() - start
    assert entry["decision"] == "counted", entry
    assert entry["endpoint"] == "count" and entry["title"] == "Working on it"
    assert entry["first_visit"] is True and entry["browser"].startswith("Chrome")
    assert in_tail < 2, f"tail printed it after {in_tail:.2f} s"
    assert on_page < 2, f"/live showed it after {on_page:.2f} s"
    row = watcher.locator(".live-entry", has_text="/dev.html")
    assert "counted" in row.inner_text() and "first visit" in row.inner_text()
    assert console_errors(watcher) == []


def _fill(server: LiveServer) -> None:
    """One entry of every decision, from both endpoints."""
    base = server.url
    get(base + "/count?p=/pricing&t=Pricing&r=https%3A%2F%2Fnews.example.org%2Fitem&s=1920")
    get(base + "/count?p=/about&t=About%20us&s=390")
    get(base + "/count?p=/docs/getting-started&t=Getting%20started", {"User-Agent": "curl/8.5.0"})
    get(base + "/count?p=/favicon.ico")
    get(base + "/count?p=/x&e=maybe")
    get(base + "/count?p=signup-button&e=true&t=Sign%20up")
    body = json.dumps({"hits": [
        {"path": "/api/checkout", "title": "Checkout", "user_agent": UA, "ip": "81.2.69.160"},
        {"path": "", "user_agent": UA, "ip": "81.2.69.160"},
        {"path": "/crawled", "user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1;"
         " +http://www.google.com/bot.html)", "ip": "66.249.66.1"}]}).encode()
    for _ in range(2):
        req = urllib.request.Request(base + "/api/v0/count", data=body, method="POST", headers={
            "Authorization": f"Bearer {server.token}", "Content-Type": "application/json",
            "Idempotency-Key": "screenshot-batch"})
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(req, timeout=30).close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_live_page_screenshots(browser, live_server, screenshots, scheme):
    _fill(live_server)
    page = new_context(browser, color_scheme=scheme).new_page()
    sign_in(page, live_server)
    page.goto(live_server.url + "/live")
    page.wait_for_selector(".live-entry:has-text('/pricing')")
    page.wait_for_selector("[data-live-status]:has-text('Live:')")
    decisions = set(page.locator(".live-entry .badge").all_inner_texts())
    assert decisions == {"counted", "bot", "ignored", "invalid", "duplicate"}, decisions
    screenshots(page, f"live-{scheme}")
    # Filtering keeps the page: only the chosen decision, and the address says which.
    page.get_by_label("bot").check()
    page.wait_for_url("**/live?decision=bot")
    expect(page.locator(".live-entry")).to_have_count(2)
    assert set(page.locator(".live-entry .badge").all_inner_texts()) == {"bot"}
    page.set_viewport_size(PHONE)
    # Nothing wider than a phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert console_errors(page) == []


def test_entries_of_two_workers_come_out_in_one_order(live_server):
    """Groups of pageviews sent at once (so that both workers take some), one group after
    the other: the tail shows every group before the next, each entry once, times in
    order. Which worker takes a request is the kernel's choice: more groups are sent
    until both have taken some."""
    group, got, sent = 4, [], 0
    with tail_json(live_server) as tail, ThreadPoolExecutor(group) as pool:
        for _ in range(8):
            for _ in range(30):
                urls = [f"{live_server.url}/count?p=/group/{sent}/{i}" for i in range(group)]
                assert list(pool.map(get, urls)) == [200] * group
                sent += 1
            want = sent * group
            tail.wait_for(lambda line, want=want: got.append(json.loads(line))
                          or len(got) == want)
            if len({e["worker"] for e in got}) == 2:
                break
    paths = [e["path"] for e in got]
    assert sorted(paths) == sorted(f"/group/{n}/{i}" for n in range(sent) for i in range(group))
    groups = [int(p.split("/")[2]) for p in paths]
    assert groups == sorted(groups)
    times = [e["time"] for e in got]
    assert times == sorted(times)
    workers = {e["worker"] for e in got}
    assert len(workers) == 2, workers
    assert {e["decision"] for e in got} == {"counted"}


def test_serve_dev(tmp_path):
    instance = tmp_path / "instance"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--dev", "--listen", f"127.0.0.1:{port}", "--workers", "2"]
    with command(args, instance) as out:
        password = out.wait_for(lambda line: line.split("password: ")[1]
                                if "password: " in line else None, timeout=60)
        token = out.wait_for(lambda line: line.strip() if len(line.strip()) > 40
                             and " " not in line.strip() else None)
        out.wait_for(lambda line: "data-goatcounter-settings='{\"allow_local\": true}'" in line)
        out.wait_for(lambda line: f"{base}/live" in line)
        out.wait_for(lambda line: "Stop with Ctrl-C." in line)
        assert get(base + "/count?p=/from-dev&t=Dev") == 200
        line = out.wait_for(lambda line: line if "/from-dev" in line else None)
        assert "counted" in line and '"Dev"' in line
        # Every client is this machine: no limit on the API's counting either.
        req = urllib.request.Request(base + "/api/v0/count", method="POST", data=json.dumps(
            {"hits": [{"path": "/api-dev", "user_agent": UA, "ip": "81.2.69.160"}]}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 202
            assert resp.headers["X-Rate-Limit-Limit"] == "2147483647"
        out.wait_for(lambda line: "/api-dev" in line)
        assert password
    assert out.proc.returncode == 0, "\n".join(out.seen)
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/count.js", timeout=5)
    # A second run: the site is there; no new password, no token.
    with command(args, instance) as out:
        out.wait_for(lambda line: "Site 1 (127.0.0.1); sign in at" in line, timeout=60)
        out.wait_for(lambda line: "Stop with Ctrl-C." in line)
    assert not any("password:" in line for line in out.seen)


def test_serve_dev_listens_on_loopback_only(runner):
    result = runner.invoke(args=["serve", "--dev", "--listen", "0.0.0.0:8081"])
    assert result.exit_code == 2
    assert "--dev listens on 127.0.0.1 only" in result.output
    result = runner.invoke(args=["serve", "--reload"])
    assert result.exit_code == 2 and "only with --dev" in result.output


def test_tail_of_an_unknown_site(runner):
    result = runner.invoke(args=["tail", "--site", "99"])
    assert result.exit_code == 2 and "there is no site 99" in result.output


def test_readable_tail(live_server):
    with command(["tail", "--since", "600", "--site", str(live_server.site["id"])],
                 live_server.instance) as out:
        get(live_server.url + "/count?p=/readable&t=Readable", {"User-Agent": USER_AGENT})
        line = out.wait_for(lambda line: line if "/readable" in line else None)
    assert "counted" in line and '"Readable"' in line and "first visit" in line

"""count.js in a real browser: Debian's headless Chromium loads a page that embeds the
snippet, and we look at what reaches the server.

Two kinds of test. Against a stub endpoint that records requests, they check what the
script sends (method, parameter order, encoding). Against the real server under
gunicorn, they check that the page view and the click end up stored as hits.

Chromium is driven over the DevTools protocol on --remote-debugging-pipe (NUL-ended JSON
on fds 3 and 4), which needs nothing beyond the standard library.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import re
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from goatcounter import create_app
from tests.conftest import make_site
from tests.servers import gunicorn

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
PAGES = Path(__file__).resolve().parent / "pages"
SCRIPT = ROOT / "goatcounter" / "public" / "static" / "count.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# A desktop Chrome: headless Chromium's own says "HeadlessChrome", which any bot check
# (ours included) rightly refuses to count.
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
# Cross-origin, so the browser's default referrer policy cuts it down to the origin.
REFERRER = "http://news.example.org/story/42?utm_source=feed"
SENT_REFERRER = "http://news.example.org/"
GIF = bytes.fromhex("47494638396101000100800100000000ffffff21f90401"
                    "0a0001002c00000000010001000002024c01003b")
TIMEOUT = 20.0


def chromium_flags(profile: Path) -> list[str]:
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        # Without these Chromium reaches out to Google services on start.
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--disable-breakpad", "--no-default-browser-check",
        "--mute-audio", "--no-proxy-server",
        # Pages here only ever talk to 127.0.0.1: any name lookup would be a leak.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        # Otherwise navigator.webdriver is true and count.js reports b=153 (a bot).
        "--disable-blink-features=AutomationControlled",
        f"--user-agent={USER_AGENT}",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
        "--remote-debugging-pipe",
    ]


class DevTools:
    """A Chromium process and its DevTools pipe. `call` sends a command and waits for
    its answer; events are kept so that tests can wait for them."""

    def __init__(self, workdir: Path) -> None:
        profile = workdir / "chromium-profile"
        profile.mkdir()
        cmd_read, self._cmd_write = os.pipe()
        self._out_read, out_write = os.pipe()

        def wire_pipe() -> None:
            # In the child before exec: Chromium expects the pipe on fds 3 (its input)
            # and 4 (its output). Going through fds >= 10 keeps one dup2 from
            # overwriting the other end when a pipe already sits on 3 or 4.
            high_in = fcntl.fcntl(cmd_read, fcntl.F_DUPFD, 10)
            high_out = fcntl.fcntl(out_write, fcntl.F_DUPFD, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)
            os.close(high_in)
            os.close(high_out)

        self.log_path = workdir / "chromium.log"
        # Chromium keeps crash reports and caches under $HOME unless told otherwise.
        env = dict(os.environ, XDG_CONFIG_HOME=str(workdir / "config"),
                   XDG_CACHE_HOME=str(workdir / "cache"))
        with open(self.log_path, "wb") as log:
            # close_fds=False: Python opens its own fds close-on-exec, so Chromium gets
            # stdio and the two wired above; close_fds=True would close those two too.
            self.proc = subprocess.Popen(
                [CHROMIUM, *chromium_flags(profile), "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                preexec_fn=wire_pipe, close_fds=False)
        os.close(cmd_read)
        os.close(out_write)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._out_read, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                self._inbox.put(None)
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                self._inbox.put(json.loads(raw))

    def _take(self, deadline: float) -> None:
        """Move one message from the pipe to the replies or the events."""
        try:
            message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return
        if message is None:
            raise RuntimeError("chromium closed its DevTools pipe:\n" + self.log())
        if "id" in message:
            self._replies[message["id"]] = message
        else:
            self.events.append(message)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = TIMEOUT) -> dict[str, Any]:
        self._next_id += 1
        msg_id = self._next_id
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._cmd_write, data):]
        deadline = time.monotonic() + timeout
        while msg_id not in self._replies:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to {method}:\n{self.log()}")
            self._take(deadline)
        reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, session: str | None = None,
                   timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["method"] == method and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event["params"]
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} event")
            self._take(deadline)

    def pump(self) -> None:
        """Collect the events that have arrived so far."""
        while not self._inbox.empty():
            self._take(time.monotonic())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_write)
        self._reader.join(timeout=5)
        os.close(self._out_read)


class Tab:
    """One page of the browser, attached as a flat session."""

    def __init__(self, browser: DevTools, background: bool = False) -> None:
        self.browser = browser
        # A background tab is hidden (document.visibilityState) until it is shown.
        self.target = browser.call("Target.createTarget", {"url": "about:blank",
                                                           "background": background})["targetId"]
        self.session = browser.call("Target.attachToTarget",
                                    {"targetId": self.target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session)

    def open(self, url: str, referrer: str = "") -> None:
        """Load `url` as if a link on `referrer` had been followed; returns after the
        load event, which waits for async scripts such as count.js."""
        result = self.call("Page.navigate", {"url": url, "referrer": referrer})
        assert "errorText" not in result, result
        self.browser.wait_event("Page.loadEventFired", self.session)
        # The load event may have been about:blank's, which comes first.
        self.wait_for(f"document.readyState === 'complete' && location.href === {json.dumps(url)}")

    def show(self) -> None:
        self.browser.call("Target.activateTarget", {"targetId": self.target})

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false: {expression}\nconsole: {self.console()}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (a trusted event) in the middle of the element."""
        box = self.eval(f"(function() {{ var r = document.querySelector({json.dumps(selector)})"
                        ".getBoundingClientRect();"
                        " return {x: r.left + r.width / 2, y: r.top + r.height / 2} })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"],
                                                   "button": "left", "clickCount": 1})

    def console(self) -> list[str]:
        """What the page wrote to its console, e.g. count.js's warnings."""
        self.browser.pump()
        return [" ".join(str(arg.get("value", arg.get("description", "")))
                         for arg in event["params"]["args"])
                for event in self.browser.events
                if event["method"] == "Runtime.consoleAPICalled"
                and event.get("sessionId") == self.session]


@dataclass
class Request:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str]

    def params(self) -> list[tuple[str, str]]:
        return urllib.parse.parse_qsl(self.query, keep_blank_values=True)


@dataclass
class PageServer:
    """The web site that embeds the snippet, on its own loopback port. `{{HOST}}` in a
    page is the host:port that serves count.js and /count. With `stub=True` this
    server is that host too: it serves our count.js and records the /count requests."""

    count_host: str = ""
    stub: bool = False
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    @contextlib.contextmanager
    def run(self) -> Iterator[PageServer]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        if self.stub:
            self.count_host = self.url.removeprefix("http://")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if site.stub and path == "/count":
                    return self.record(path, query)
                if site.stub and path == "/count.js":
                    return self.reply(200, SCRIPT.read_bytes(), "application/javascript")
                page = PAGES / path.lstrip("/")
                if page.suffix != ".html" or page.parent != PAGES or not page.is_file():
                    return self.reply(404, b"not found", "text/plain")
                html = page.read_text().replace("{{HOST}}", site.count_host)
                return self.reply(200, html.encode(), "text/html; charset=utf-8")

            def do_POST(self) -> None:
                path, _, query = self.path.partition("?")
                if site.stub and path == "/count":
                    return self.record(path, query)
                return self.reply(404, b"not found", "text/plain")

            def record(self, path: str, query: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                site.requests.append(Request(self.command, path, query, body,
                                             dict(self.headers.items())))
                self.reply(200, GIF, "image/gif")

        return Handler


def wait_until(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def settle() -> None:
    """Give a stray extra request time to arrive before counting them."""
    time.sleep(0.5)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    chromium = DevTools(tmp_path)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def tab(browser: DevTools) -> Tab:
    return Tab(browser)


@pytest.fixture
def stub() -> Iterator[PageServer]:
    with PageServer(stub=True).run() as server:
        yield server


# What the script sends -----------------------------------------------------------------

def test_pageview_request(tab: Tab, stub: PageServer) -> None:
    tab.open(stub.url + "/pageview.html?a=b&utm_source=x", referrer=REFERRER)
    hit = wait_until(lambda: stub.requests, "the page view")[0]
    settle()
    assert len(stub.requests) == 1, stub.requests

    # sendBeacon: a POST without a body, everything in the query string.
    assert hit.method == "POST"
    assert hit.body == b""
    assert hit.headers["User-Agent"] == USER_AGENT
    assert [k for k, _ in hit.params()] == ["p", "r", "t", "s", "b", "q", "rnd"]
    params = dict(hit.params())
    assert params["p"] == "/pageview.html?a=b&utm_source=x"
    assert params["r"] == SENT_REFERRER == tab.eval("document.referrer")
    assert params["t"] == "Ünïcode & a page to count"
    assert params["s"] == str(tab.eval("screen.width"))
    assert params["b"] == "0"
    assert params["q"] == "?a=b&utm_source=x"
    assert re.fullmatch(r"[0-9a-z]{1,5}", params["rnd"])
    # encodeURIComponent: spaces as %20, never +, and UTF-8 percent-escapes.
    assert "t=%C3%9Cn%C3%AFcode%20%26%20a%20page%20to%20count&" in hit.query
    assert "p=%2Fpageview.html%3Fa%3Db%26utm_source%3Dx&" in hit.query


def test_click_request(tab: Tab, stub: PageServer) -> None:
    tab.open(stub.url + "/click.html")
    wait_until(lambda: stub.requests, "the page view")
    tab.wait_for("document.querySelector('button').dataset.goatcounterBound === 'true'")
    tab.click("button")
    wait_until(lambda: len(stub.requests) >= 2, "the click")
    settle()
    assert len(stub.requests) == 2, stub.requests

    view, click = stub.requests
    assert dict(view.params())["p"] == "/click.html"
    assert "r" not in dict(view.params())  # No referrer, nothing sent.
    # No referrer for events, and no q: the page has no query string.
    assert [k for k, _ in click.params()] == ["p", "t", "e", "s", "b", "rnd"]
    params = dict(click.params())
    assert params["p"] == "signup-button"
    assert params["t"] == "Sign up"
    assert params["e"] == "true"
    assert click.method == "POST"


def test_manual_count_and_public_api(tab: Tab, stub: PageServer) -> None:
    tab.open(stub.url + "/manual.html?Ref=abc&x=1")
    tab.wait_for("typeof goatcounter.count === 'function'")
    settle()
    assert stub.requests == []  # no_onload

    assert tab.eval("goatcounter.filter()") is False
    assert tab.eval("goatcounter.get_query('ref')") == "abc"
    assert tab.eval("goatcounter.get_query('nope')") is None
    url = tab.eval("goatcounter.url({path: '/x y', title: function(t) { return t + '!' }})")
    assert url.startswith(f"http://{stub.count_host}/count?p=%2Fx%20y&t=A%20page%20that"
                          "%20counts%20by%20hand!&s=")

    tab.eval("goatcounter.count({path: '/by-hand', event: true, no_session: true})")
    wait_until(lambda: stub.requests, "the manual count")
    assert [k for k, _ in stub.requests[0].params()] == \
        ["p", "t", "e", "s", "b", "q", "ns", "rnd"]
    assert dict(stub.requests[0].params())["ns"] == "true"

    # A path callback that returns null cancels the count.
    tab.eval("goatcounter.count({path: function() { return null }})")
    settle()
    assert len(stub.requests) == 1
    assert "goatcounter: not counting because path callback returned null" in tab.console()


def test_canonical_link_names_the_page(tab: Tab, stub: PageServer) -> None:
    tab.open(stub.url + "/manual.html?utm_source=x")
    tab.wait_for("typeof goatcounter.count === 'function'")
    add_link = ("(function(href) { var l = document.createElement('link');"
                " l.rel = 'canonical'; l.href = href; document.head.appendChild(l) })")
    tab.eval(add_link + "('http://elsewhere.example/other')")
    assert tab.eval("goatcounter.get_data().p") == "/manual.html?utm_source=x"
    tab.eval("document.querySelector('link[rel=canonical]').remove()")
    tab.eval(add_link + "('/canonical/page?id=1')")
    assert tab.eval("goatcounter.get_data().p") == "/canonical/page?id=1"


def test_image_when_the_beacon_fails(tab: Tab, stub: PageServer) -> None:
    # What a Content-Security-Policy that blocks the beacon looks like to the script.
    tab.call("Page.addScriptToEvaluateOnNewDocument",
             {"source": "navigator.sendBeacon = function() { return false }"})
    tab.open(stub.url + "/pageview.html")
    hit = wait_until(lambda: stub.requests, "the page view")[0]
    settle()
    assert len(stub.requests) == 1
    assert hit.method == "GET"
    assert [k for k, _ in hit.params()] == ["p", "t", "s", "b", "rnd"]
    # The image goes away once it has loaded.
    tab.wait_for("document.querySelectorAll('img').length === 0")


def test_hidden_page_is_counted_when_shown(browser: DevTools, stub: PageServer) -> None:
    # A tab opened in the background may never be looked at.
    tab = Tab(browser, background=True)
    tab.open(stub.url + "/pageview.html")
    assert tab.eval("document.visibilityState") == "hidden"
    tab.wait_for("typeof goatcounter.count === 'function'")
    settle()
    assert stub.requests == []
    tab.show()
    wait_until(lambda: stub.requests, "the page view once shown")
    settle()
    assert len(stub.requests) == 1
    assert dict(stub.requests[0].params())["p"] == "/pageview.html"


def test_local_page_is_not_counted(tab: Tab, stub: PageServer) -> None:
    tab.open(stub.url + "/local.html", referrer=REFERRER)
    tab.wait_for("typeof goatcounter.count === 'function'")
    settle()
    assert stub.requests == []
    assert tab.eval("goatcounter.filter()") == "localhost"
    assert "goatcounter: not counting because of: localhost" in tab.console()


def test_skipgc_turns_counting_off(tab: Tab, stub: PageServer) -> None:
    tab.open(stub.url + "/manual.html")
    tab.eval("localStorage.setItem('skipgc', 't')")
    assert tab.eval("goatcounter.filter()") == "disabled with #toggle-goatcounter"
    tab.eval("goatcounter.count()")
    settle()
    assert stub.requests == []


# What the server stores ----------------------------------------------------------------

@dataclass
class Counter:
    base: str
    db_path: Path
    site_id: int

    def hits(self) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT p.path, p.title, p.event, r.ref, r.ref_scheme, h.width"
                " FROM hits h JOIN paths p ON p.id = h.path_id JOIN refs r ON r.id = h.ref_id"
                " WHERE h.site_id = ? ORDER BY h.id", (self.site_id,)).fetchall()
            return [dict(row) for row in rows]

    def bots(self) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(
                "SELECT path, bot, user_agent FROM bots WHERE site_id = ?", (self.site_id,))]

    def wait_hits(self, n: int) -> list[dict[str, Any]]:
        try:
            wait_until(lambda: len(self.hits()) >= n, f"{n} stored hit(s)")
        except AssertionError:
            logs = "".join(p.read_text(errors="replace")[-3000:]
                           for p in self.db_path.parent.glob("gunicorn-*.log"))
            raise AssertionError(f"hits: {self.hits()}, bots: {self.bots()}\n"
                                 f"server log:\n{logs}") from None
        settle()
        return self.hits()


@pytest.fixture
def counter(tmp_path: Path) -> Iterator[Counter]:
    instance = tmp_path / "instance"
    app = create_app({"INSTANCE": str(instance), "SECRET_KEY": "test-secret"})
    site, _ = make_site(app, cname="127.0.0.1")
    with gunicorn(str(instance), workers=2) as base:
        yield Counter(base, Path(app.config["DB_PATH"]), site["id"])


@pytest.fixture
def site(counter: Counter) -> Iterator[PageServer]:
    with PageServer(count_host=counter.base.removeprefix("http://")).run() as server:
        yield server


def test_pageview_is_stored(tab: Tab, site: PageServer, counter: Counter) -> None:
    tab.open(site.url + "/pageview.html", referrer=REFERRER)
    # The script came from the server's own /count.js, on another origin.
    assert tab.eval("typeof goatcounter.count") == "function"
    hits = counter.wait_hits(1)
    assert hits == [{"path": "/pageview.html", "title": "Ünïcode & a page to count",
                     "event": 0, "ref": "news.example.org", "ref_scheme": "h",
                     "width": tab.eval("screen.width")}], tab.console()
    assert counter.bots() == []


def test_click_is_stored_as_event(tab: Tab, site: PageServer, counter: Counter) -> None:
    tab.open(site.url + "/click.html")
    counter.wait_hits(1)  # The page view first, so that the order of the rows is known.
    tab.wait_for("document.querySelector('button').dataset.goatcounterBound === 'true'")
    tab.click("button")
    hits = counter.wait_hits(2)
    width = tab.eval("screen.width")
    assert hits == [
        {"path": "/click.html", "title": "A page with a counted button", "event": 0,
         "ref": "", "ref_scheme": "o", "width": width},
        {"path": "signup-button", "title": "Sign up", "event": 1,
         "ref": "", "ref_scheme": "o", "width": width},
    ], tab.console()

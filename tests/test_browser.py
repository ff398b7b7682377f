"""count.js in a real browser: Debian's headless Chromium loads a page that embeds the
snippet, and we look at what reaches the server.

Two kinds of test. Against a stub endpoint that records requests, they check what the
script sends (method, parameter order, encoding). Against the real server under
gunicorn, they check that the page view and the click end up stored as hits.

The browser, its pages and the server come from the harness in tests/browser.py.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import engines
from tests.browser import USER_AGENT, LiveServer, console, console_errors, follow_link
from tests.waiting import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
PAGES = Path(__file__).resolve().parent / "pages"
SCRIPT = ROOT / "goatcounter" / "public" / "static" / "count.js"

# Cross-origin, so the browser's default referrer policy cuts it down to the origin.
REFERRER = "http://news.example.org/story/42?utm_source=feed"
SENT_REFERRER = "http://news.example.org/"
GIF = bytes.fromhex("47494638396101000100800100000000ffffff21f90401"
                    "0a0001002c00000000010001000002024c01003b")


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
                if page.suffix == ".js" and page.parent == PAGES and page.is_file():
                    return self.reply(200, page.read_bytes(), "application/javascript")
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


def settle() -> None:
    """Give a stray extra request time to arrive before counting them."""
    time.sleep(0.5)


@pytest.fixture
def stub() -> Iterator[PageServer]:
    with PageServer(stub=True).run() as server:
        yield server


# What the script sends -----------------------------------------------------------------

def test_pageview_request(page: Page, stub: PageServer) -> None:
    follow_link(page, stub.url + "/pageview.html?a=b&utm_source=x", REFERRER)
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
    assert params["r"] == SENT_REFERRER == page.evaluate("document.referrer")
    assert params["t"] == "Ünïcode & a page to count"
    assert params["s"] == str(page.evaluate("screen.width"))
    assert params["b"] == "0"
    assert params["q"] == "?a=b&utm_source=x"
    assert re.fullmatch(r"[0-9a-z]{1,5}", params["rnd"])
    # encodeURIComponent: spaces as %20, never +, and UTF-8 percent-escapes.
    assert "t=%C3%9Cn%C3%AFcode%20%26%20a%20page%20to%20count&" in hit.query
    assert "p=%2Fpageview.html%3Fa%3Db%26utm_source%3Dx&" in hit.query


def test_click_request(page: Page, stub: PageServer) -> None:
    page.goto(stub.url + "/click.html")
    wait_until(lambda: stub.requests, "the page view")
    page.wait_for_function("document.querySelector('button').dataset.goatcounterBound === 'true'")
    page.click("button")
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


def test_manual_count_and_public_api(page: Page, stub: PageServer) -> None:
    page.goto(stub.url + "/manual.html?Ref=abc&x=1")
    page.wait_for_function("typeof goatcounter.count === 'function'")
    settle()
    assert stub.requests == []  # no_onload

    assert page.evaluate("goatcounter.filter()") is False
    assert page.evaluate("goatcounter.get_query('ref')") == "abc"
    assert page.evaluate("goatcounter.get_query('nope')") is None
    url = page.evaluate("goatcounter.url({path: '/x y', title: function(t) { return t + '!' }})")
    assert url.startswith(f"http://{stub.count_host}/count?p=%2Fx%20y&t=A%20page%20that"
                          "%20counts%20by%20hand!&s=")

    page.evaluate("goatcounter.count({path: '/by-hand', event: true, no_session: true})")
    wait_until(lambda: stub.requests, "the manual count")
    assert [k for k, _ in stub.requests[0].params()] == \
        ["p", "t", "e", "s", "b", "q", "ns", "rnd"]
    assert dict(stub.requests[0].params())["ns"] == "true"

    # A path callback that returns null cancels the count.
    page.evaluate("goatcounter.count({path: function() { return null }})")
    settle()
    assert len(stub.requests) == 1
    assert "goatcounter: not counting because path callback returned null" in console(page)


def test_canonical_link_names_the_page(page: Page, stub: PageServer) -> None:
    page.goto(stub.url + "/manual.html?utm_source=x")
    page.wait_for_function("typeof goatcounter.count === 'function'")
    add_link = ("(function(href) { var l = document.createElement('link');"
                " l.rel = 'canonical'; l.href = href; document.head.appendChild(l) })")
    page.evaluate(add_link + "('http://elsewhere.example/other')")
    assert page.evaluate("goatcounter.get_data().p") == "/manual.html?utm_source=x"
    page.evaluate("document.querySelector('link[rel=canonical]').remove()")
    page.evaluate(add_link + "('/canonical/page?id=1')")
    assert page.evaluate("goatcounter.get_data().p") == "/canonical/page?id=1"


def test_image_when_the_beacon_fails(page: Page, stub: PageServer) -> None:
    # What a Content-Security-Policy that blocks the beacon looks like to the script.
    page.add_init_script("navigator.sendBeacon = function() { return false }")
    page.goto(stub.url + "/pageview.html")
    hit = wait_until(lambda: stub.requests, "the page view")[0]
    settle()
    assert len(stub.requests) == 1
    assert hit.method == "GET"
    assert [k for k, _ in hit.params()] == ["p", "t", "s", "b", "rnd"]
    # The image goes away once it has loaded.
    page.wait_for_function("document.querySelectorAll('img').length === 0")


def test_hidden_page_is_counted_when_shown(background_page: Page, stub: PageServer) -> None:
    # A tab opened in the background may never be looked at.
    page = background_page
    page.goto(stub.url + "/pageview.html")
    assert page.evaluate("document.visibilityState") == "hidden"
    page.wait_for_function("typeof goatcounter.count === 'function'")
    settle()
    assert stub.requests == []
    page.bring_to_front()
    wait_until(lambda: stub.requests, "the page view once shown")
    settle()
    assert len(stub.requests) == 1
    assert dict(stub.requests[0].params())["p"] == "/pageview.html"


def test_local_page_is_not_counted(page: Page, stub: PageServer) -> None:
    follow_link(page, stub.url + "/local.html", REFERRER)
    page.wait_for_function("typeof goatcounter.count === 'function'")
    settle()
    assert stub.requests == []
    assert page.evaluate("goatcounter.filter()") == "localhost"
    assert "goatcounter: not counting because of: localhost" in console(page)


def test_skipgc_turns_counting_off(page: Page, stub: PageServer) -> None:
    page.goto(stub.url + "/manual.html")
    page.evaluate("localStorage.setItem('skipgc', 't')")
    assert page.evaluate("goatcounter.filter()") == "disabled with #toggle-goatcounter"
    page.evaluate("goatcounter.count()")
    settle()
    assert stub.requests == []


# What the server stores ----------------------------------------------------------------

@dataclass
class Counter:
    """The hits and bots that a live server stored for its site."""

    server: LiveServer

    def query(self, sql: str) -> list[dict[str, Any]]:
        # The server's database: the run's PostgreSQL (GOATCOUNTER_DB) or its SQLite file.
        target = os.environ.get("GOATCOUNTER_DB") or str(self.server.db_path)
        return [dict(row) for row in engines.query_url(target, sql, (self.server.site["id"],))]

    def hits(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT p.path, p.title, p.event, r.ref, r.ref_scheme, h.width"
            " FROM hits h JOIN paths p ON p.id = h.path_id JOIN refs r ON r.id = h.ref_id"
            " WHERE h.site_id = ? ORDER BY h.id")

    def bots(self) -> list[dict[str, Any]]:
        return self.query("SELECT path, bot, user_agent FROM bots WHERE site_id = ?")

    def wait_hits(self, n: int) -> list[dict[str, Any]]:
        try:
            wait_until(lambda: len(self.hits()) >= n, f"{n} stored hit(s)")
        except AssertionError:
            raise AssertionError(f"hits: {self.hits()}, bots: {self.bots()}\n"
                                 f"server log:\n{self.server.log()}") from None
        settle()
        return self.hits()


@pytest.fixture
def counter(live_server: LiveServer) -> Counter:
    return Counter(live_server)


@pytest.fixture
def site(live_server: LiveServer) -> Iterator[PageServer]:
    with PageServer(count_host=live_server.host).run() as server:
        yield server


def test_pageview_is_stored(page: Page, site: PageServer, counter: Counter) -> None:
    follow_link(page, site.url + "/pageview.html", REFERRER)
    # The script came from the server's own /count.js, on another origin.
    assert page.evaluate("typeof goatcounter.count") == "function"
    hits = counter.wait_hits(1)
    assert hits == [{"path": "/pageview.html", "title": "Ünïcode & a page to count",
                     "event": 0, "ref": "news.example.org", "ref_scheme": "h",
                     "width": page.evaluate("screen.width")}], console(page)
    assert counter.bots() == []


def test_click_is_stored_as_event(page: Page, site: PageServer, counter: Counter) -> None:
    page.goto(site.url + "/click.html")
    counter.wait_hits(1)  # The page view first, so that the order of the rows is known.
    page.wait_for_function("document.querySelector('button').dataset.goatcounterBound === 'true'")
    page.click("button")
    hits = counter.wait_hits(2)
    width = page.evaluate("screen.width")
    assert hits == [
        {"path": "/click.html", "title": "A page with a counted button", "event": 0,
         "ref": "", "ref_scheme": "o", "width": width},
        {"path": "signup-button", "title": "Sign up", "event": 1,
         "ref": "", "ref_scheme": "o", "width": width},
    ], console(page)


def test_visitor_counter_in_a_page(page: Page, site: PageServer, live_server: LiveServer) -> None:
    """goatcounter.visit_count() shows the counter of a path as HTML, SVG and PNG."""
    api = {"Authorization": f"Bearer {live_server.token}", "Content-Type": "application/json"}
    hits = [{"path": "/counted", "session": f"visitor-{i}"} for i in range(3)]
    hits.append({"path": "/other", "session": "visitor-9"})
    for method, path, body in [
            ("POST", "/api/v0/count", {"hits": hits}),
            ("PATCH", f"/api/v0/sites/{live_server.site['id']}",
             {"settings": {"allow_counter": True}})]:
        resp = page.request.fetch(live_server.url + path, method=method, headers=api,
                                  data=json.dumps(body))
        assert resp.status < 300, resp.text()
    page.goto(site.url + "/counter.html")
    frame = page.frame_locator("#as-html iframe")
    assert frame.locator("#gcvc-views").inner_text() == "3"
    assert frame.locator("#gcvc-for").inner_text() == "Views for this page:"
    total = page.frame_locator("#as-total iframe")
    assert total.locator("#gcvc-views").inner_text() == "4"
    for box, size in (("#as-svg img", (200, 80)), ("#as-png img", (200, 60))):
        page.wait_for_function(
            f"document.querySelector({json.dumps(box)})?.complete"
            f" && document.querySelector({json.dumps(box)}).naturalWidth > 0")
        got = page.evaluate(f"[document.querySelector({json.dumps(box)}).naturalWidth,"
                            f" document.querySelector({json.dumps(box)}).naturalHeight]")
        assert tuple(got) == size, box
    src = page.get_attribute("#as-svg img", "src")
    assert src == f"http://{live_server.host}/counter/%2Fcounted.svg?"
    assert console_errors(page, expected=(site.url + "/favicon.ico",)) == []

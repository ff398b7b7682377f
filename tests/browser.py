"""The browser harness: Debian's Chromium driven through Playwright, for every test that
loads a page (count.js on a page that embeds it now, the dashboard's pages later).

tests/conftest.py loads this module as a plugin, so any test can ask for its fixtures:

- `browser`: one Chromium for the whole test run. Playwright never downloads a browser
  here: it always starts CHROMIUM, Debian's /usr/bin/chromium (TEST_CHROMIUM names
  another). Without it, or without the playwright package, browser tests are skipped,
  which fails the run in CI (see tests/conftest.py).
- `context`, `page`: a new browser context (its own cookies and storage) and a page in it
  for each test: DESKTOP-sized, with a desktop Chrome's user agent. For a phone-sized page,
  `page.set_viewport_size(PHONE)`; for more contexts, `new_context(browser)`.
- `background_page`: a page in a background tab, hidden until `bring_to_front()`.
- `follow_link(page, url, referrer)`: open a page as if from a link on another site.
- `live_server`: a fresh instance with a site, its admin user (with a password) and an
  API token, served by
  a real gunicorn on a loopback port (`start_server` does the same as a context manager).
- `sign_in(page, server)`: signs in through the form, as a person would;
  `signed_in_page` is a page signed in to `live_server`.
- `screenshot`: `screenshot(page, name)` saves `name.png` under $SCREENSHOT_DIR, or under
  this run's pytest temporary folder, and returns its path; `screenshots(page, name)`
  takes it at 1280 and 375 px wide.
- `console_errors(page)`: errors in the page's console (a CSP violation shows up there).
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from goatcounter import create_app
from goatcounter.accounts import passwords, users
from goatcounter.storage import db
from tests.conftest import make_site
from tests.servers import free_port, gunicorn

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

CHROMIUM = os.environ.get("TEST_CHROMIUM") or "/usr/bin/chromium"
# Playwright's own waits (navigation, selectors, wait_for_function), in milliseconds.
TIMEOUT_MS = 20_000

# A desktop Chrome. Headless Chromium's own user agent says "HeadlessChrome", which any bot
# check (count.js and the server's included) rightly refuses to count.
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}

FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # Without these Chromium reaches out to Google services on start.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-breakpad", "--no-default-browser-check",
    "--mute-audio", "--no-proxy-server",
    # Pages here only ever talk to 127.0.0.1: any name lookup would be a leak.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    # Otherwise navigator.webdriver is true and count.js reports b=153 (a bot).
    "--disable-blink-features=AutomationControlled",
    # For pages outside Playwright's contexts (background_page); those set it themselves.
    f"--user-agent={USER_AGENT}",
    f"--window-size={DESKTOP['width']},{DESKTOP['height']}",
]


@dataclass
class Chromium:
    """The running browser, with the loopback port of its DevTools endpoint."""

    playwright: Playwright
    browser: Browser
    debugging_port: int


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not there (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    home = tmp_path_factory.mktemp("chromium")
    port = free_port()
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*FLAGS, f"--remote-debugging-port={port}"],
            # Chromium keeps crash reports and caches under $HOME unless told otherwise.
            env={**os.environ, "XDG_CONFIG_HOME": str(home / "config"),
                 "XDG_CACHE_HOME": str(home / "cache")})
        try:
            yield Chromium(playwright, browser, port)
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def browser(chromium: Chromium) -> Browser:
    return chromium.browser


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    """A browser context with the harness's defaults; `options` as for
    Browser.new_context, e.g. viewport=PHONE."""
    settings: dict[str, Any] = {"viewport": DESKTOP, "user_agent": USER_AGENT,
                                "locale": "en-US", "timezone_id": "UTC", **options}
    context = browser.new_context(**settings)
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = new_context(browser)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def background_page(chromium: Chromium) -> Iterator[Page]:
    """A page in a tab opened behind another: document.visibilityState is "hidden" until
    `page.bring_to_front()`.

    Playwright keeps the pages of its own contexts visible (it emulates focus on them), so
    this one lives in Chromium's default context, reached over the DevTools port without
    Playwright's defaults. So its cookies and storage are not a fresh context's, and its
    user agent and window size come from FLAGS."""
    remote = chromium.playwright.chromium.connect_over_cdp(
        f"http://127.0.0.1:{chromium.debugging_port}", no_defaults=True)
    try:
        default = remote.contexts[0]
        default.set_default_timeout(TIMEOUT_MS)
        session = remote.new_browser_cdp_session()
        opened = []
        for background in (False, True):
            with default.expect_page() as new:
                session.send("Target.createTarget", {"url": "about:blank",
                                                     "background": background})
            opened.append(new.value)
        session.detach()
        try:
            yield opened[-1]
        finally:
            for tab in opened:
                tab.close()
    finally:
        remote.close()


def follow_link(page: Page, url: str, referrer: str) -> None:
    """Load `url` in `page` as if a link on the page at `referrer` had been followed, and
    wait for its load event (which waits for async scripts such as count.js).

    goto(url, referer=...) is no substitute: Playwright sends that referrer whole, with the
    "unsafe-url" policy. Here the navigation goes to DevTools with no policy of its own, so
    the browser's default one applies (a cross-origin link sends only the origin)."""
    session = page.context.new_cdp_session(page)
    try:
        result = session.send("Page.navigate", {"url": url, "referrer": referrer})
    finally:
        session.detach()
    assert "errorText" not in result, result
    page.wait_for_url(lambda loaded: loaded == url)


def console(page: Page) -> list[str]:
    """What the page wrote to its console (e.g. count.js's warnings), oldest first."""
    return [message.text for message in page.console_messages()]


def console_errors(page: Page, expected: tuple[str, ...] = ()) -> list[str]:
    """Errors the page wrote to its console (a Content-Security-Policy violation shows
    up here), but for failed loads of the `expected` URLs (say, a page that is a 404)."""
    return [m.text for m in page.console_messages() if m.type == "error"
            and not (m.text.startswith("Failed to load resource")
                     and m.location.get("url") in expected)]


# Servers ------------------------------------------------------------------------------

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "a password to sign in with"


@dataclass
class LiveServer:
    """A fresh instance under a real gunicorn."""

    url: str  # The base URL, http://127.0.0.1:<port>, no slash at the end.
    instance: Path
    db_path: Path
    site: dict[str, Any]  # The site, whose cname is the server's host (127.0.0.1).
    token: str  # An API token with every permission.
    user_id: int  # The site's admin user.
    email: str = ADMIN_EMAIL
    password: str = ADMIN_PASSWORD

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def app(self) -> Any:
        """An app on the same instance, for looking at or changing the database from
        the test (its CLI runner is `goatcounter` on this server)."""
        return create_app({"INSTANCE": str(self.instance)})

    def log(self, chars: int = 3000) -> str:
        """The end of gunicorn's log, for assertion messages."""
        return "".join(p.read_text(errors="replace")[-chars:]
                       for p in sorted(self.instance.glob("gunicorn-*.log")))


@contextlib.contextmanager
def start_server(instance: Path, workers: int = 2,
                 env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """Create `instance` with one site and serve it with gunicorn until the block ends."""
    app = create_app({"INSTANCE": str(instance)})
    site, token = make_site(app, cname="127.0.0.1", email=ADMIN_EMAIL)
    hashed = passwords.hash_password(ADMIN_PASSWORD)
    with app.app_context():
        user_id = db.get_db().execute("SELECT id FROM users WHERE email = :e",
                                      {"e": ADMIN_EMAIL}).fetchone()[0]
        db.write(lambda conn: users.set_password(conn, user_id, hashed))
    with gunicorn(str(instance), workers=workers, env=env) as base:
        yield LiveServer(base, instance, Path(app.config["DB_PATH"]), site, token, user_id)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    with start_server(tmp_path / "instance") as server:
        yield server


def sign_in(page: Page, server: LiveServer, email: str | None = None,
            password: str | None = None) -> None:
    """Sign the page's context in to `server` through the form, and wait for the
    dashboard."""
    page.goto(server.url + "/user/new")
    page.get_by_label("Email address").fill(email or server.email)
    page.get_by_label("Password").fill(password or server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


@pytest.fixture
def signed_in_page(page: Page, live_server: LiveServer) -> Page:
    sign_in(page, live_server)
    return page


# Screenshots --------------------------------------------------------------------------

def save_screenshot(page: Page, folder: Path, name: str) -> Path:
    """The whole page as folder/name.png (name made safe for a file name)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "page"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$SCREENSHOT_DIR if set (so that CI or a person can keep them), else a folder in
    this run's pytest temporary directory."""
    folder = os.environ.get("SCREENSHOT_DIR")
    return Path(folder) if folder else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def screenshot(screenshot_dir: Path) -> Callable[[Page, str], Path]:
    def take(page: Page, name: str) -> Path:
        return save_screenshot(page, screenshot_dir, name)
    return take


@pytest.fixture
def screenshots(screenshot_dir: Path) -> Callable[[Page, str], list[Path]]:
    """`screenshots(page, name)`: the page at 1280 px (name-1280.png) and at 375 px
    (name-375.png); the page is left at its first size."""
    def take(page: Page, name: str) -> list[Path]:
        before = page.viewport_size or DESKTOP
        paths = []
        for size in (DESKTOP, PHONE):
            page.set_viewport_size(size)
            paths.append(save_screenshot(page, screenshot_dir, f"{name}-{size['width']}"))
        page.set_viewport_size(before)
        return paths
    return take

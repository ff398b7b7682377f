"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against the
server under gunicorn, steps as a site owner takes them. Screenshots of every step go
to build/screenshots/ (1280 and 375 px wide, light and dark)."""
from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from goatcounter import create_app
from tests import dashboard_data
from tests.conftest import NO_LIMITS, query
from tests.servers import ROOT, gunicorn

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "build" / "screenshots"
HOST = "127.0.0.1"
PERIOD = "period-start=2026-11-12&period-end=2026-11-26"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """gunicorn with two workers over an instance holding the test site's visits."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    instance = tmp_path_factory.mktemp("dash-browser")
    app = create_app({"INSTANCE": str(instance), "RATELIMIT": NO_LIMITS,
                      "COUNT_IN_BACKGROUND": False, "SECRET_KEY": "browser-test"})
    dashboard_data.setup(app, cname=HOST)
    with gunicorn(str(instance), workers=2, env={"GOATCOUNTER_RATELIMIT": NO_LIMITS,
                                                "GOATCOUNTER_SECRET_KEY": "browser-test"}) as url:
        yield url, instance


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def new_page(browser, width: int, scheme: str = "light"):
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  color_scheme=scheme)
    page = context.new_page()
    errors: list[str] = []
    # Script errors, and anything the page asks for that fails (but the icon that
    # browsers ask for on their own).
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def sign_in(page, url: str) -> None:
    """Open the dashboard as the site's admin."""
    page.goto(f"{url}/?{PERIOD}")


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def numbers(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def visits_per_path(instance: Path) -> dict[str, int]:
    app = create_app({"INSTANCE": str(instance), "COUNT_IN_BACKGROUND": False,
                      "SECRET_KEY": "browser-test"})
    rows = query(app, "SELECT p.path, sum(h.first_visit) FROM hits h JOIN paths p"
                      " ON p.id = h.path_id WHERE h.created_at >= 1794441600"
                      " AND h.created_at < 1795737600 GROUP BY p.path")
    return {r[0]: r[1] for r in rows}


def test_a_site_owner_reads_the_dashboard(server, browser):
    url, instance = server
    page = new_page(browser, 1280)
    sign_in(page, url)
    expect = playwright.expect

    # The counted paths, with the right numbers.
    rows = page.locator("tr.page")
    expect(rows.first).to_be_visible()
    shown = {rows.nth(i).locator("a.path").inner_text():
             numbers(rows.nth(i).locator(".col-count .n").inner_text())
             for i in range(rows.count())}
    assert shown == visits_per_path(instance)
    shoot(page, "dashboard-1280-light")

    # Back one period and forward again.
    span = page.locator(".dash-move .span strong")
    first = span.inner_text()
    page.get_by_role("link", name="← Previous").click()
    expect(span).not_to_have_text(first)
    assert span.inner_text().startswith("28 Oct")
    page.get_by_role("link", name="Next →").click()
    expect(span).to_have_text(first)
    assert page.url.endswith(PERIOD)

    # A path's referrers.
    page.locator("a.path", has_text="/about").click()
    refs = page.locator("tr.refs")
    expect(refs).to_be_visible()
    expect(refs.locator("h3")).to_have_text("Referrers of /about")
    assert refs.locator(".hrow").count() >= 1
    assert "path=%2Fabout" in page.url
    shoot(page, "dashboard-path-1280")
    page.locator(".chip a").click()
    expect(refs).to_have_count(0)

    # Filter on a browser, then remove the filter.
    browsers = page.locator("#w-browsers")
    browsers.get_by_role("link", name="Chrome").click()
    expect(page.locator(".chip")).to_have_text(re.compile("Browser: Chrome"))
    expect(page.locator("#w-browsers h2")).to_contain_text("Chrome versions")
    chrome = numbers(page.locator(".figure-value").first.inner_text())
    assert 0 < chrome < sum(shown.values())
    assert "browser=Chrome" in page.url
    shoot(page, "dashboard-filtered-1280")
    page.locator(".chip a").click()
    expect(page.locator(".chip")).to_have_count(0)
    assert numbers(page.locator(".figure-value").first.inner_text()) == sum(shown.values())

    # A bar tells its number on keyboard focus.
    page.locator("#totals .slot").first.focus()
    expect(page.locator("[data-tooltip]")).to_be_visible()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.getAttribute('tabindex')") == "0"
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("width", "scheme"), [(1280, "dark"), (375, "light"), (375, "dark")])
def test_the_dashboard_at_each_width_and_theme(server, browser, width, scheme):
    url, _ = server
    page = new_page(browser, width, scheme)
    sign_in(page, url)
    playwright.expect(page.locator("tr.page").first).to_be_visible()
    # Nothing wider than the window: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shoot(page, f"dashboard-{width}-{scheme}")
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_page_works_without_javascript(server, browser):
    url, _ = server
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280,
                                                                       "height": 900})
    page = context.new_page()
    page.goto(f"{url}/?{PERIOD}")
    page.locator("#w-browsers").get_by_role("link", name="Firefox").click()
    playwright.expect(page.locator(".chip")).to_have_text(re.compile("Browser: Firefox"))
    page.fill("input[name=filter]", "blog")
    page.get_by_role("button", name="Show").click()
    playwright.expect(page.locator(".chip")).to_have_count(2)
    assert "filter=blog" in page.url and "browser=Firefox" in page.url
    context.close()

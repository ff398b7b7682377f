"""The dashboard in a real browser: Debian's Chromium, driven by Playwright through the
shared harness (tests/browser.py), against the server under gunicorn, in the steps a site
owner takes. Screenshots at 1280 and 375 px, light and dark, go where the harness puts
them ($SCREENSHOT_DIR)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from goatcounter import create_app
from tests import dashboard_data
from tests.browser import DESKTOP, PHONE, LiveServer, new_context, sign_in, start_server
from tests.conftest import NO_LIMITS, query

pytestmark = pytest.mark.browser

PERIOD = "period-start=2026-11-12&period-end=2026-11-26"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    """gunicorn with two workers over an instance holding the test site's visits, counted
    through its API."""
    instance = tmp_path_factory.mktemp("dash-browser") / "instance"
    with start_server(instance, env={"GOATCOUNTER_RATELIMIT": NO_LIMITS}) as live:
        hits = dashboard_data.hits()
        for i in range(0, len(hits), 100):
            resp = requests.post(f"{live.url}/api/v0/count", timeout=30, json={
                "hits": hits[i:i + 100], "no_sessions": False},
                headers={"Authorization": f"Bearer {live.token}"})
            assert resp.status_code == 202, resp.text
        yield live


def new_page(browser, width: int = DESKTOP["width"], scheme: str = "light"):
    viewport = DESKTOP if width == DESKTOP["width"] else PHONE
    page = new_context(browser, viewport=viewport, color_scheme=scheme).new_page()
    errors: list[str] = []
    # Script errors, and anything the page asks for that fails (but the icon that
    # browsers ask for on their own).
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def open_dashboard(page, server: LiveServer) -> None:
    """Sign in as the site's admin and open the dashboard of the test's period."""
    sign_in(page, server)
    page.goto(f"{server.url}/?{PERIOD}")


def numbers(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def visits_per_path(instance: Path) -> dict[str, int]:
    app = create_app({"INSTANCE": str(instance), "COUNT_IN_BACKGROUND": False})
    rows = query(app, "SELECT p.path, sum(h.first_visit) FROM hits h JOIN paths p"
                      " ON p.id = h.path_id WHERE h.created_at >= 1794441600"
                      " AND h.created_at < 1795737600 GROUP BY p.path")
    return {r[0]: r[1] for r in rows}


def test_a_site_owner_reads_the_dashboard(server, browser, screenshot):
    from playwright.sync_api import expect
    page = new_page(browser)
    open_dashboard(page, server)

    # The counted paths, with the right numbers.
    rows = page.locator("tr.page")
    expect(rows.first).to_be_visible()
    shown = {rows.nth(i).locator("a.path").inner_text():
             numbers(rows.nth(i).locator(".col-count .n").inner_text())
             for i in range(rows.count())}
    assert shown == visits_per_path(server.instance)
    screenshot(page, "dashboard-1280-light")

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
    screenshot(page, "dashboard-path-1280")
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
    screenshot(page, "dashboard-filtered-1280")
    page.locator(".chip a").click()
    expect(page.locator(".chip")).to_have_count(0)
    assert numbers(page.locator(".figure-value").first.inner_text()) == sum(shown.values())

    # A bar tells its number on keyboard focus.
    page.locator("#totals .slot").first.focus()
    expect(page.locator("[data-tooltip]")).to_be_visible()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.getAttribute('tabindex')") == "0"

    # Sign out: the dashboard is gone until the next sign-in.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/user/new$|/$"))
    page.goto(f"{server.url}/?{PERIOD}")
    expect(page).to_have_url(re.compile(r"/user/new$"))
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("width", "scheme"), [(1280, "dark"), (375, "light"), (375, "dark")])
def test_the_dashboard_at_each_width_and_theme(server, browser, screenshot, width, scheme):
    from playwright.sync_api import expect
    page = new_page(browser, width, scheme)
    open_dashboard(page, server)
    expect(page.locator("tr.page").first).to_be_visible()
    # Nothing wider than the window: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"dashboard-{width}-{scheme}")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_line_charts_slot_tells_its_number(server, browser, screenshot):
    """The pages' rows are line charts (upstream's default): each day of a row tells its
    visits on keyboard focus and on hover, and the arrow keys go from day to day."""
    from playwright.sync_api import expect
    page = new_page(browser)
    open_dashboard(page, server)
    row = page.locator("tr.page").first
    chart = row.locator("figure.chart-line")
    expect(chart).to_be_visible()
    assert chart.locator("path.line").count() == 1
    slots = chart.locator(".slot")
    tip = page.locator("[data-tooltip]")
    expect(tip).to_be_hidden()

    page.keyboard.press("Tab")  # the page's first focus, then to the row's chart
    slots.first.focus()
    expect(tip).to_be_visible()
    first = slots.first.locator("title").text_content()
    expect(tip).to_have_text(first)
    # The slot is marked, over the line.
    assert slots.first.locator(".hit").evaluate("d => getComputedStyle(d).stroke") \
        not in ("none", "transparent", "rgba(0, 0, 0, 0)")
    page.keyboard.press("ArrowRight")
    second = slots.nth(1).locator("title").text_content()
    expect(tip).to_have_text(second)
    assert page.evaluate("document.activeElement.querySelector('title').textContent") == second
    # The number is the row's for that day, as the table for screen readers says.
    cells = chart.locator(".sr-only tbody tr").nth(1).locator("th, td")
    day, visits = cells.nth(0).text_content(), cells.nth(1).text_content()
    assert second == f"{day}: {visits} visit{'' if visits == '1' else 's'}"
    page.keyboard.press("End")
    expect(tip).to_have_text(slots.last.locator("title").text_content())
    page.keyboard.press("ArrowLeft")
    screenshot(page, "dashboard-line-focus-1280")

    # The pointer, on a day of the totals.
    plot = page.locator("#totals figure.chart-line svg.plot")
    plot.scroll_into_view_if_needed()
    totals = plot.locator(".slot")
    count = totals.count()
    box = plot.bounding_box()
    # A slot is a line of its width; the middle one of the chart.
    page.mouse.move(box["x"] + (count // 2 + 0.5) / count * box["width"],
                    box["y"] + box["height"] / 2)
    expect(tip).to_have_text(totals.nth(count // 2).locator("title").text_content())
    assert re.search(r": \d+ visits?, \d+ pageviews?$", tip.text_content())
    assert page.errors == []  # type: ignore[attr-defined]


def set_widgets(instance: Path, widgets: list[dict] | None) -> list[dict]:
    """Store the admin's widgets (None: upstream's defaults); returns the ones before."""
    import json

    from goatcounter.storage import db
    app = create_app({"INSTANCE": str(instance), "COUNT_IN_BACKGROUND": False})
    with app.app_context():
        conn = db.get_db()
        settings = json.loads(conn.execute("SELECT settings FROM users ORDER BY id LIMIT 1")
                              .fetchone()[0])
        before = settings.get("widgets") or []
        settings["widgets"] = widgets if widgets is not None else before
        db.write(lambda c: c.execute("UPDATE users SET settings = ? WHERE id ="
                                     " (SELECT min(id) FROM users)", (json.dumps(settings),)))
    return before


@pytest.mark.parametrize("width", [1280, 375])
def test_the_totals_chart_lines_up_with_the_pages_when_set_to(server, browser, screenshot,
                                                             width):
    from playwright.sync_api import expect
    before = set_widgets(server.instance, None)
    aligned = [dict(w, s={**(w.get("s") or {}), "align": True})
               if w.get("n") == "totalpages" else w for w in before]
    set_widgets(server.instance, aligned)
    try:
        page = new_page(browser, width)
        open_dashboard(page, server)
        expect(page.locator("#totals.is-aligned")).to_be_visible()
        totals = page.locator("#totals svg.plot").bounding_box()
        row = page.locator("tr.page").first.locator("svg.plot").bounding_box()
        assert abs(totals["x"] - row["x"]) < 1, (totals, row)
        assert abs(totals["x"] + totals["width"] - row["x"] - row["width"]) < 1, (totals, row)
        if width == 1280:
            # Not the full width: the page columns come first.
            assert totals["x"] > 300
        screenshot(page, f"dashboard-aligned-{width}")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        set_widgets(server.instance, before)


def test_the_page_works_without_javascript(server, browser):
    from playwright.sync_api import expect
    context = new_context(browser, java_script_enabled=False)
    page = context.new_page()
    open_dashboard(page, server)
    page.locator("#w-browsers").get_by_role("link", name="Firefox").click()
    expect(page.locator(".chip")).to_have_text(re.compile("Browser: Firefox"))
    page.fill("input[name=filter]", "blog")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".chip")).to_have_count(2)
    assert "filter=blog" in page.url and "browser=Firefox" in page.url
    context.close()

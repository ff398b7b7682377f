"""The settings pages in a real browser (Debian's Chromium through Playwright,
tests/browser.py) against a real gunicorn, walked as a site's admin does; and the
screenshots of every page at a desktop's and a phone's width, light and dark."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pyotp
import pytest
import requests

from tests.browser import PHONE, LiveServer, console_errors, new_context, sign_in

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).parent / "fixtures"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


def api(server: LiveServer, path: str, token: str | None = None, method: str = "GET",
        body: dict | None = None) -> requests.Response:
    return requests.request(method, server.url + path, json=body, timeout=10, headers={
        "Authorization": f"Bearer {token or server.token}"})


def count(server: LiveServer, *paths: str) -> None:
    hits = [{"path": p, "user_agent": UA, "ip": "81.2.69.160", "session": f"s-{p}"}
            for p in paths]
    assert api(server, "/api/v0/count", method="POST", body={"hits": hits}).status_code == 202


def test_site_setting_shows_in_the_api(signed_in_page, live_server):
    page, server = signed_in_page, live_server
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.wait_for_url(server.url + "/settings/main")
    page.get_by_label("Ignore pageviews from these addresses").fill("192.0.2.300")
    page.get_by_role("button", name="Save").click()
    # Refused beside the field; nothing stored.
    assert page.locator(".field-error").first.inner_text() == \
        "must be a valid IPv4 or IPv6 address"
    assert api(server, f"/api/v0/sites/{server.site['id']}").json()["setttings"][
        "ignore_ips"] == ""
    page.get_by_label("Ignore pageviews from these addresses").fill("192.0.2.30")
    page.get_by_role("button", name="Add my address").click()
    page.get_by_label("Keep data for this many days").fill("400")
    page.get_by_label("Allow the visitor counter on your pages").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(server.url + "/settings/main")
    assert page.get_by_text("Saved.").is_visible()
    got = api(server, f"/api/v0/sites/{server.site['id']}").json()["setttings"]
    assert got["ignore_ips"] == "192.0.2.30,127.0.0.1"
    assert (got["data_retention"], got["allow_counter"]) == (400, True)
    assert console_errors(page) == []


def test_make_an_api_key_and_use_it(signed_in_page, live_server):
    page, server = signed_in_page, live_server
    page.goto(server.url + "/user/api")
    page.get_by_label("Name").fill("stats reader")
    page.get_by_label("Read statistics").check()
    page.get_by_label("Every site of this account, also those added later").check()
    page.get_by_role("button", name="Make the key").click()
    key = page.get_by_label("The new API key").input_value()
    assert page.get_by_role("button", name="Copy").is_visible()
    assert api(server, "/api/v0/stats/total", token=key).status_code == 200
    assert api(server, "/api/v0/sites", token=key).status_code == 403
    page.goto(server.url + "/user/api")
    assert page.get_by_role("cell", name="stats reader").is_visible()
    assert key not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").last.click()
    page.wait_for_load_state()
    assert api(server, "/api/v0/stats/total", token=key).status_code == 401
    assert console_errors(page) == []


def test_add_a_read_only_user_and_sign_in_as_them(browser, signed_in_page, live_server):
    page, server = signed_in_page, live_server
    page.goto(server.url + "/settings/users")
    page.get_by_role("link", name="Add a user").click()
    page.get_by_label("Email address").fill("reader@example.com")
    page.get_by_label("Read only").check()
    page.get_by_role("button", name="Add the user").click()
    password = page.get_by_label("The new user's password").input_value()
    context = new_context(browser)
    try:
        reader = context.new_page()
        sign_in(reader, server, "reader@example.com", password)
        assert reader.get_by_role("heading", level=1).inner_text() == "Dashboard"
        # Their Settings are their own preferences; the site's are not for them.
        reader.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
        reader.wait_for_url(server.url + "/user/pref")
        assert reader.get_by_role("link", name="Users").count() == 0
        with reader.expect_response(server.url + "/settings/main") as reply:
            reader.goto(server.url + "/settings/main")
        assert reply.value.status == 403
        assert "Your account may not view this page." in reader.inner_text("main")
    finally:
        context.close()


def test_two_factor_sign_in(browser, signed_in_page, live_server, screenshots):
    page, server = signed_in_page, live_server
    page.goto(server.url + "/user/auth")
    assert page.locator("svg.qr").is_visible()
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    otp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(otp.now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    page.wait_for_url(server.url + "/user/auth")
    assert page.get_by_text("Two-factor sign-in is on").first.is_visible()

    context = new_context(browser)
    try:
        other = context.new_page()
        other.goto(server.url + "/user/new")
        other.get_by_label("Email address").fill(server.email)
        other.get_by_label("Password").fill(server.password)
        other.get_by_role("button", name="Sign in").click()
        other.get_by_label("Code").wait_for()
        assert other.url == server.url + "/user/requestlogin"
        screenshots(other, "signin-code-light")
        # The code of the step that turned it on is spent; the next one is taken.
        other.get_by_label("Code").fill(otp.at(time.time() + 30))
        other.get_by_role("button", name="Sign in").click()
        other.wait_for_url(server.url + "/")
        assert other.get_by_role("heading", level=1).inner_text() == "Dashboard"
        assert console_errors(other) == []
    finally:
        context.close()
    assert console_errors(page) == []


def test_import_the_export_and_watch_it_finish(signed_in_page, live_server, screenshots):
    page, server = signed_in_page, live_server
    page.goto(server.url + "/settings/export")
    page.get_by_label("Export file").set_input_files(str(FIXTURES / "export.csv.gz"))
    page.get_by_role("button", name="Import").click()
    page.wait_for_url(re.compile(r".*/settings/export/import/\d+$"))
    # The workers' background threads import it; the page follows until it is done.
    page.get_by_text("Done: 54 rows imported, 0 refused.").wait_for(timeout=30_000)
    screenshots(page, "settings-import-done-light")
    total = api(server, "/api/v0/stats/total?start=2026-11-01&end=2026-11-30").json()
    assert total["total"] > 0
    assert console_errors(page) == []


def test_purge_a_path(signed_in_page, live_server):
    page, server = signed_in_page, live_server
    count(server, "/keep", "/secret-page", "/secret-page")
    paths = {p["path"] for p in api(server, "/api/v0/paths").json()["paths"]}
    assert paths == {"/keep", "/secret-page"}
    page.goto(server.url + "/settings/purge")
    page.get_by_label("Paths like").fill("/secret")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("button", name="Delete the chosen paths…").click()
    assert "This deletes 1 pageview" in page.inner_text("main") or \
        "This deletes 2 pageviews" in page.inner_text("main")
    page.get_by_role("button", name="Yes, delete it").click()
    page.wait_for_url(server.url + "/settings/purge")
    assert page.get_by_text("Deleted 1 path").is_visible()
    assert {p["path"] for p in api(server, "/api/v0/paths").json()["paths"]} == {"/keep"}
    hits = api(server, "/api/v0/stats/hits").json()["hits"]
    assert [h["path"] for h in hits] == ["/keep"]
    page.goto(server.url + "/")
    assert "/secret-page" not in page.inner_text("main")
    assert console_errors(page) == []


# Screenshots ---------------------------------------------------------------------------

PAGES = [
    ("settings-main", "/settings/main"),
    ("settings-pref", "/user/pref"),
    ("settings-widgets", "/user/dashboard"),
    ("settings-auth", "/user/auth"),
    ("settings-api", "/user/api"),
    ("settings-users", "/settings/users"),
    ("settings-users-add", "/settings/users/add"),
    ("settings-sites", "/settings/sites"),
    ("settings-purge", "/settings/purge?path=/"),
    ("settings-export", "/settings/export"),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_settings_pages_at_both_widths(browser, live_server, screenshots, scheme):
    """Each settings page for a person to look at, and what a machine can check: the
    theme follows the system, nothing is wider than a phone, no CSP errors."""
    server = live_server
    count(server, "/", "/about", "/blog/first-post")
    api(server, "/api/v0/sites", method="PUT", body={"cname": "blog.example.com"})
    context = new_context(browser, color_scheme=scheme)
    try:
        page = context.new_page()
        sign_in(page, server)
        for name, path in PAGES:
            page.goto(server.url + path)
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == ("rgb(255, 255, 255)" if scheme == "light"
                                  else "rgb(21, 24, 28)"), path
            screenshots(page, f"{name}-{scheme}")
            page.set_viewport_size(PHONE)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (path, width)
            page.set_viewport_size({"width": 1280, "height": 800})
        # A form with errors, and a confirmation page.
        page.goto(server.url + "/settings/main")
        page.get_by_label("Ignore pageviews from these addresses").fill("not-an-ip")
        page.get_by_label("Keep data for this many days").fill("-3")
        page.get_by_role("button", name="Save").click()
        page.wait_for_load_state()
        screenshots(page, f"settings-main-errors-{scheme}")
        page.goto(server.url + "/settings/purge?path=/blog")
        page.get_by_role("button", name="Delete the chosen paths…").click()
        page.wait_for_load_state()
        screenshots(page, f"settings-purge-confirm-{scheme}")
        assert console_errors(page) == []
    finally:
        context.close()


def test_the_chosen_theme_wins_over_the_system(browser, live_server):
    server = live_server
    context = new_context(browser, color_scheme="light")
    try:
        page = context.new_page()
        sign_in(page, server)
        page.goto(server.url + "/user/pref")
        page.get_by_label("Theme").select_option("dark")
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(server.url + "/user/pref")
        for path in ("/user/pref", "/"):
            page.goto(server.url + path)
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == \
                "rgb(21, 24, 28)", path
        me = api(server, "/api/v0/me").json()["user"]["settings"]
        assert me["theme"] == "dark"
    finally:
        context.close()

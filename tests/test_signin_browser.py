"""Signing in and out in a real browser (Chromium through Playwright, tests/browser.py)
against a real gunicorn, and the pages' layout at a desktop's and a phone's width in
the light and the dark theme."""
from __future__ import annotations

import pytest

from tests.browser import (
    PHONE,
    LiveServer,
    console_errors,
    new_context,
    sign_in,
)

pytestmark = pytest.mark.browser


def expect_sign_in_form(page, server: LiveServer) -> None:
    assert page.url == server.url + "/user/new", page.url
    assert page.get_by_role("heading", level=1).inner_text() == f"Sign in at {server.site['cname']}"
    assert page.get_by_role("button", name="Sign in").is_visible()
    assert "Dashboard" not in page.inner_text("body")


def test_sign_in_and_out(page, live_server):
    server = live_server
    # Signed out, the dashboard sends you to sign in, and shows nothing of the site.
    page.goto(server.url + "/")
    expect_sign_in_form(page, server)

    sign_in(page, server)
    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard"
    assert page.get_by_text(server.email).is_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server.url + "/user/new")
    assert page.get_by_text("You are signed out.").is_visible()
    page.goto(server.url + "/")
    expect_sign_in_form(page, server)
    # No inline script or style broke the Content-Security-Policy on the way.
    assert console_errors(page) == []


def test_wrong_password(page, live_server):
    server = live_server
    page.goto(server.url + "/user/new")
    page.get_by_label("Email address").fill(server.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    assert page.get_by_label("Email address").input_value() == server.email
    assert page.get_by_label("Password").input_value() == ""
    page.goto(server.url + "/")
    expect_sign_in_form(page, server)


def test_post_without_csrf_token_is_refused(page, live_server):
    server = live_server
    page.goto(server.url + "/user/new")
    page.locator("input[name=csrf]").evaluate("input => input.remove()")
    page.get_by_label("Email address").fill(server.email)
    page.get_by_label("Password").fill(server.password)
    with page.expect_response(server.url + "/user/requestlogin") as reply:
        page.get_by_role("button", name="Sign in").click()
    assert reply.value.status == 400
    assert "This form has expired" in page.inner_text("main")
    page.goto(server.url + "/")
    expect_sign_in_form(page, server)

    # Signed in, a sign-out without the token leaves you signed in.
    sign_in(page, server)
    page.locator(".sign-out input[name=csrf]").evaluate("input => input.remove()")
    with page.expect_response(server.url + "/user/logout") as reply:
        page.get_by_role("button", name="Sign out").click()
    assert reply.value.status == 400
    page.goto(server.url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard"


def test_session_from_before_a_password_change_is_refused(browser, page, live_server):
    server = live_server
    sign_in(page, server)
    before = page.context.cookies()

    # The admin sets a new password from the command line while the server runs.
    result = server.app().test_cli_runner().invoke(args=[
        "db", "update", "user", "--id", str(server.user_id), "--password", "brand new one"])
    assert result.exit_code == 0, result.output

    page.reload()
    expect_sign_in_form(page, server)
    # The old cookie, brought back as it was (say, from another device), is refused too.
    other = new_context(browser)
    try:
        other.add_cookies(before)
        old = other.new_page()
        old.goto(server.url + "/")
        expect_sign_in_form(old, server)
        sign_in(old, server, password="brand new one")
        assert old.get_by_role("heading", level=1).inner_text() == "Dashboard"
    finally:
        other.close()


def test_error_page_is_a_page(page, live_server):
    with page.expect_response(live_server.url + "/no/such/page") as reply:
        page.goto(live_server.url + "/no/such/page")
    assert reply.value.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Page not found"
    assert reply.value.headers["content-security-policy"].startswith("default-src 'self'")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_at_both_widths(browser, live_server, screenshots, scheme):
    """Screenshots of each page for a person to look at, and the checks a machine can
    make: the theme follows the system, nothing is wider than a phone, no CSP errors."""
    server = live_server
    context = new_context(browser, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(server.url + "/user/new")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(255, 255, 255)" if scheme == "light" else "rgb(21, 24, 28)")
        screenshots(page, f"signin-{scheme}")

        page.get_by_label("Email address").fill(server.email)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        screenshots(page, f"signin-wrong-{scheme}")

        sign_in(page, server)
        screenshots(page, f"dashboard-{scheme}")
        page.goto(server.url + "/no/such/page")
        screenshots(page, f"error-404-{scheme}")

        for path in ("/user/new", "/", "/no/such/page"):
            page.set_viewport_size(PHONE)
            page.goto(server.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (path, width)
            assert page.get_by_role("button", name="Sign out").is_visible()
        assert console_errors(page, expected=(server.url + "/no/such/page",)) == []
    finally:
        context.close()

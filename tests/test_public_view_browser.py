"""Share links in the browser: an admin makes one, somebody else opens it, the admin
revokes it."""
from __future__ import annotations

import pytest

from tests.browser import new_context

pytestmark = pytest.mark.browser


def test_share_a_link_and_revoke_it(browser, signed_in_page, live_server, screenshots):
    page = signed_in_page
    page.goto(live_server.url + "/settings/share")
    page.get_by_label("Name").fill("for the board meeting")
    page.get_by_label("Open for").select_option("7d")
    page.get_by_role("button", name="Make the link").click()
    address = page.locator("#new-link-url").input_value()
    assert address.startswith(live_server.url + "/?access-token=")
    screenshots(page, "share-links")

    guest = new_context(browser).new_page()
    guest.goto(address)
    assert guest.url == live_server.url + "/"
    assert guest.locator("h1").inner_text() == "Dashboard"

    page.goto(live_server.url + "/settings/share")
    row = page.locator("#share-links tbody tr", has_text="for the board meeting")
    assert "never" not in row.inner_text()  # the guest's visit is its last use
    row.get_by_role("button", name="Revoke").click()
    assert "revoked" in page.locator("#share-links").inner_text()

    guest.reload()
    assert guest.url == live_server.url + "/user/new"
    other = new_context(browser).new_page()
    other.goto(address)
    assert other.url == live_server.url + "/user/new"

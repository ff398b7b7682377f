"""The browser harness itself (tests/browser.py): the browser passes for a person's,
pages are as wide as asked, screenshots land where they should, and a live server
answers with the token it was made with."""
from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tests.browser import DESKTOP, PHONE, USER_AGENT, LiveServer, save_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

LOOKS = ("[navigator.userAgent, navigator.webdriver, document.visibilityState,"
         " window.innerWidth]")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_page_is_not_a_bot(page: Page) -> None:
    page.set_content("<title>t</title>")
    assert page.evaluate(LOOKS) == [USER_AGENT, False, "visible", DESKTOP["width"]]


def test_background_page_is_hidden_until_shown(background_page: Page) -> None:
    background_page.set_content("<title>t</title>")
    assert background_page.evaluate(LOOKS) == [USER_AGENT, False, "hidden", DESKTOP["width"]]
    background_page.bring_to_front()
    assert background_page.evaluate("document.visibilityState") == "visible"


def test_screenshots_at_both_widths(page: Page, screenshot: Callable[[Page, str], Path],
                                    screenshot_dir: Path) -> None:
    page.set_content("<h1>Hello</h1>" + "<p>a line of text</p>" * 80)
    wide = screenshot(page, "harness 1280")
    page.set_viewport_size(PHONE)
    narrow = screenshot(page, "harness-375")
    assert wide == screenshot_dir / "harness-1280.png"
    assert narrow == screenshot_dir / "harness-375.png"
    assert png_size(wide)[0] == DESKTOP["width"]
    width, height = png_size(narrow)
    # The whole page, not only what fits in the window.
    assert width == PHONE["width"] and height > PHONE["height"]


def test_save_screenshot_makes_its_folder(page: Page, tmp_path: Path) -> None:
    page.set_content("<p>x</p>")
    path = save_screenshot(page, tmp_path / "a" / "b", "../page")
    assert path == tmp_path / "a" / "b" / "page.png"
    assert png_size(path)[0] == DESKTOP["width"]


def test_live_server_answers_its_token(live_server: LiveServer, page: Page) -> None:
    me = requests.get(live_server.url + "/api/v0/me", timeout=10,
                      headers={"Authorization": f"Bearer {live_server.token}"})
    assert me.status_code == 200, (me.text, live_server.log())
    assert me.json()["user"]["email"] == live_server.email
    response = page.goto(live_server.url + "/count.js")
    assert response is not None and response.ok

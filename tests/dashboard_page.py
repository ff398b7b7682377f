"""Reading the dashboard's HTML back in tests: the numbers of its widgets."""
from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from goatcounter.accounts import passwords, users
from goatcounter.storage import db

_ROW = re.compile(r'<li class="hrow[^"]*">(.*?)</li>', re.S)
_NAME = re.compile(r'class="name"[^>]*>(.*?)</(?:a|span)>', re.S)
_COUNT = re.compile(r'<span class="col-count">(.*?)</span>', re.S)
_PAGE = re.compile(r'<tr class="page[^"]*">(.*?)</tr>', re.S)
_PATH = re.compile(r'<a class="path"[^>]*>(.*?)</a>', re.S)
_VISITS = re.compile(r'<span class="n">(.*?)</span>', re.S)
_VIEWS = re.compile(r'<td class="col-views">(.*?)</td>', re.S)
_SECTION = re.compile(r'<section class="widget [^"]*" id="([^"]+)"(.*?)</section>', re.S)
_FIGURE = re.compile(r'<dt>(.*?)</dt>\s*<dd><span class="figure-value">(.*?)</span>', re.S)


def number(text: str) -> int | None:
    digits = re.sub(r"\D", "", text)
    return int(digits) if digits else None


def sections(page: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _SECTION.finditer(page)}


def list_rows(section: str) -> list[tuple[str, int]]:
    """(name, count) of a list widget's rows."""
    out = []
    for m in _ROW.finditer(section):
        name = html.unescape(_NAME.search(m.group(1)).group(1))  # type: ignore[union-attr]
        out.append((name, number(_COUNT.search(m.group(1)).group(1))))  # type: ignore[union-attr]
    return out


def page_rows(section: str) -> list[tuple[str, int, int | None]]:
    """(path, visits, pageviews) of the pages widget."""
    out = []
    for m in _PAGE.finditer(section):
        body = m.group(1)
        out.append((html.unescape(_PATH.search(body).group(1)),  # type: ignore[union-attr]
                    number(_VISITS.search(body).group(1)),  # type: ignore[union-attr, arg-type]
                    number(_VIEWS.search(body).group(1))))  # type: ignore[union-attr]
    return out


def figures(section: str) -> dict[str, int | None]:
    return {m.group(1): number(m.group(2)) for m in _FIGURE.finditer(section)}


def dashboard(client: FlaskClient, host: str, query: str = "", status: int = 200) -> str:
    resp = client.get("/" + (f"?{query}" if query else ""), headers={"Host": host})
    assert resp.status_code == status, resp.get_data(as_text=True)[:2000]
    return resp.get_data(as_text=True)


PASSWORD = "a dashboard password"
_HASHES: dict[str, str] = {}


def signed_in(app: Flask, site: Any, email: str = "admin@example.com") -> FlaskClient:
    """A client signed in (through the form) as a user with `email` of the site's account;
    `site` is the site, or (api, site) as dashboard_data.setup returns them."""
    site = site[1] if isinstance(site, tuple) else site
    host = site["cname"]
    # scrypt is slow on purpose: one hash per test run is enough.
    hashed = _HASHES.setdefault(PASSWORD, passwords.hash_password(PASSWORD))
    with app.app_context():
        conn = db.get_db()
        user_id = conn.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()[0]
        db.write(lambda c: users.set_password(c, user_id, hashed))
    client = app.test_client()
    form = client.get("/user/new", headers={"Host": host}).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    resp = client.post("/user/requestlogin", headers={"Host": host},
                       data={"csrf": csrf, "email": email, "password": PASSWORD})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    return client

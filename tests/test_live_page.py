"""The live log's page (dashboard/live.py): GET /live and the /live.json its script polls,
for signed-in users of the site only."""
from __future__ import annotations

import json
import re

import pytest
from flask import Flask

from goatcounter.accounts import users
from goatcounter.dashboard import live
from goatcounter.storage import db
from tests.conftest import API, UA, make_site
from tests.test_pages import assert_page
from tests.test_signin import EMAIL, HOST, add_user, sign_in


@pytest.fixture(autouse=True)
def _fresh_replies(monkeypatch):
    monkeypatch.setattr(live, "REUSE", 0)


@pytest.fixture
def site(app: Flask) -> dict:
    site, _ = make_site(app, cname=HOST, email="token-owner@example.com")
    add_user(app, site["id"], EMAIL)
    return site


@pytest.fixture
def api(app: Flask, site) -> API:
    with app.app_context():
        from goatcounter.accounts import tokens

        def run(conn):
            user = users.get(conn, 1)
            return tokens.create_token(conn, user=user, name="t", permissions=tokens.PERM_ALL)[0]
        token = db.write(run)
    return API(app.test_client(), token, HOST)


def pixel(client, query: str, ua: str = UA) -> None:
    client.get("/count?" + query, headers={"Host": HOST, "User-Agent": ua},
               environ_base={"REMOTE_ADDR": "81.2.69.160"})


def paths_shown(html: str) -> list[str]:
    return re.findall(r'<span class="live-path">([^<]*)</span>', html)


def test_signed_out_goes_to_the_sign_in_form(client, site):
    for path in ("/live", "/live.json"):
        resp = client.get(path, headers={"Host": HOST})
        assert resp.status_code == 303 and resp.headers["Location"].endswith("/user/new")


def test_a_user_of_another_site_is_refused(app, client, site):
    other, _ = make_site(app, cname="other.example.com", email="owner@other.example.com")
    add_user(app, other["id"], "someone@other.example.com")
    sign_in(client, email="someone@other.example.com", host="other.example.com")
    assert client.get("/live", headers={"Host": "other.example.com"}).status_code == 200
    # Its cookie brought here (a second port of the same host, say).
    value = client.get_cookie("session", domain="other.example.com").value
    client.set_cookie("session", value, domain=HOST)
    pixel(client, "p=/ours")
    for path in ("/live", "/live.json"):
        resp = client.get(path, headers={"Host": HOST})
        assert resp.status_code == 403 and "/ours" not in resp.get_data(as_text=True)


def test_the_page_shows_entries_newest_first(client, site):
    sign_in(client)
    pixel(client, "p=/first&t=First")
    pixel(client, "p=/second")
    pixel(client, "p=/bot-page", ua="curl/8.5.0")
    html = assert_page(client.get("/live", headers={"Host": HOST}), 200)
    assert paths_shown(html) == ["/bot-page", "/second", "/first"]
    assert "bot 4: a client library (curl)" in html
    assert '<span class="live-title">First</span>' in html
    assert 'aria-current="page">Live</a>' in html
    filtered = client.get("/live?decision=bot", headers={"Host": HOST}).get_data(as_text=True)
    assert paths_shown(filtered) == ["/bot-page"]
    assert 'value="bot" checked' in filtered


def test_what_a_visitor_sent_is_escaped(client, site):
    sign_in(client)
    pixel(client, "p=/%3Cscript%3Ealert(1)%3C/script%3E&t=%3Cb%3Ex%3C/b%3E")
    html = client.get("/live", headers={"Host": HOST}).get_data(as_text=True)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>x</b>" not in html


def test_an_unknown_decision_is_a_400_page(client, site):
    sign_in(client)
    assert_page(client.get("/live?decision=nope", headers={"Host": HOST}), 400,
                "Unknown decision")
    resp = client.get("/live.json?after=x", headers={"Host": HOST})
    assert resp.status_code == 400


def test_json_gives_what_came_after(client, site, api):
    sign_in(client)
    api.post("/api/v0/count", {"hits": [{"path": "/a", "user_agent": UA, "ip": "81.2.69.160"}]})
    first = client.get("/live.json", headers={"Host": HOST}).get_json()
    assert [e["path"] for e in first["entries"]] == ["/a"]
    entry = first["entries"][0]
    assert entry["endpoint"] == "api" and entry["endpoint_name"] == "API"
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", entry["shown_time"])
    assert entry["details"].startswith("Firefox 131 · Linux")
    newest = first["newest"]
    assert newest == entry["id"]
    nothing = client.get(f"/live.json?after={newest}", headers={"Host": HOST}).get_json()
    assert nothing == {"entries": [], "newest": newest}
    pixel(client, "p=/b")
    pixel(client, "p=")
    later = client.get(f"/live.json?after={newest}", headers={"Host": HOST}).get_json()
    assert [(e["path"], e["decision"]) for e in later["entries"]] == [
        ("", "invalid"), ("/b", "counted"), ("/a", "counted")]
    assert later["newest"] == newest + 2
    only = client.get(f"/live.json?after={newest}&decision=invalid",
                      headers={"Host": HOST}).get_json()
    assert [e["decision"] for e in only["entries"]] == ["invalid"]


def test_pages_that_poll_together_share_a_reply(app, client, site, api, monkeypatch):
    """While entries pour in, each poll within REUSE seconds gets the reply made first,
    with the newest id it was made with (so that the next poll asks again)."""
    monkeypatch.setattr(live, "REUSE", 60)
    sign_in(client)
    pixel(client, "p=/one")
    first = client.get("/live.json", headers={"Host": HOST}).get_json()
    pixel(client, "p=/two")
    again = client.get(f"/live.json?after={first['newest'] - 1}",
                       headers={"Host": HOST}).get_json()
    assert again == first
    app.extensions["goatcounter_live_replies"].clear()
    fresh = client.get(f"/live.json?after={first['newest']}", headers={"Host": HOST}).get_json()
    assert [e["path"] for e in fresh["entries"]] == ["/two", "/one"]


def test_times_are_in_the_users_zone(app, client, site, api):
    def set_zone(conn) -> None:
        row = conn.execute("SELECT settings FROM users WHERE email = :e", {"e": EMAIL}).fetchone()
        settings = {**json.loads(row[0]), "timezone": "NL.Asia/Tokyo"}
        conn.execute("UPDATE users SET settings = :s WHERE email = :e",
                     {"s": json.dumps(settings), "e": EMAIL})

    with app.app_context():
        db.write(set_zone)
    sign_in(client)
    api.post("/api/v0/count", {"hits": [{"path": "/a", "user_agent": UA, "ip": "81.2.69.160"}]})
    entry = client.get("/live.json", headers={"Host": HOST}).get_json()["entries"][0]
    utc_hour = int(entry["time"][11:13])
    assert int(entry["shown_time"][:2]) == (utc_hour + 9) % 24
    assert json.dumps(entry)

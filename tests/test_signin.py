"""Signing in and out of the pages (dashboard/signin.py, accounts/logins.py): the form,
the session cookie, CSRF, the rate limit, and what a stale or foreign session gets."""
from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from goatcounter import clock
from goatcounter.accounts import logins, passwords, sites, users
from goatcounter.storage import db
from tests.conftest import make_site, query

HOST = "stats.example.com"
EMAIL = "admin@example.com"
PASSWORD = "correct horse battery"


def add_user(app: Flask, site_id: int, email: str, password: str | None = PASSWORD,
             access: str = "a") -> dict:
    with app.app_context():
        return db.write(lambda conn: users.create(conn, site_id=site_id, email=email,
                                                  password=password, access=access))


@pytest.fixture
def site(app: Flask) -> dict:
    site, _ = make_site(app, cname=HOST, email="token-owner@example.com")
    add_user(app, site["id"], EMAIL)
    return site


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def form_token(client: FlaskClient, host: str = HOST) -> str:
    resp = client.get("/user/new", headers={"Host": host})
    assert resp.status_code == 200
    return csrf_of(resp.get_data(as_text=True))


def sign_in(client: FlaskClient, email: str = EMAIL, password: str = PASSWORD,
            host: str = HOST):
    token = form_token(client, host)
    return client.post("/user/requestlogin", headers={"Host": host},
                       data={"csrf": token, "email": email, "password": password})


def dashboard(client: FlaskClient, host: str = HOST):
    return client.get("/", headers={"Host": host})


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session", domain=HOST)
    assert cookie is not None
    return cookie.value


def test_signed_out_dashboard_goes_to_the_form(client, site):
    resp = dashboard(client)
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/user/new"
    assert "Dashboard" not in resp.get_data(as_text=True)


def test_the_form(client, site):
    resp = client.get("/user/new?email=a%40b.example", headers={"Host": HOST})
    assert resp.status_code == 200
    assert resp.content_type == "text/html; charset=utf-8"
    html = resp.get_data(as_text=True)
    assert f"<h1>Sign in at {HOST}</h1>" in html
    assert 'action="/user/requestlogin"' in html
    assert 'name="email"' in html and 'value="a@b.example"' in html
    assert 'name="password"' in html and 'autocomplete="current-password"' in html
    assert "Sign out" not in html
    # GET /user/requestlogin is only a way back to the form.
    resp = client.get("/user/requestlogin", headers={"Host": HOST})
    assert (resp.status_code, resp.headers["Location"]) == (303, "/user/new")


def test_sign_in_and_out(app, client, site):
    resp = sign_in(client)
    assert (resp.status_code, resp.headers["Location"]) == (303, "/")
    resp = dashboard(client)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "<h1>Dashboard</h1>" in html and EMAIL in html and "Sign out" in html
    # Signed in, the form sends you on to the dashboard.
    assert client.get("/user/new", headers={"Host": HOST}).status_code == 303
    (row,) = query(app, "SELECT login_at, open_at FROM users WHERE email = :e", {"e": EMAIL})
    assert row["login_at"] and row["open_at"]

    resp = client.post("/user/logout", headers={"Host": HOST}, data={"csrf": csrf_of(html)})
    assert (resp.status_code, resp.headers["Location"]) == (303, "/user/new")
    assert dashboard(client).status_code == 303
    page = client.get("/user/new", headers={"Host": HOST}).get_data(as_text=True)
    assert "You are signed out." in page


def test_email_is_case_insensitive(client, site):
    assert sign_in(client, email="  ADMIN@Example.com ").headers["Location"] == "/"


def test_session_cookie_attributes(client, site):
    resp = sign_in(client)
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Expires=" in cookie


def test_cookie_is_secure_over_https(client, site):
    resp = client.get("/user/new", headers={"Host": HOST}, base_url=f"https://{HOST}")
    assert "Secure" in resp.headers["Set-Cookie"]


def test_cookie_is_secure_behind_a_trusted_proxy(app_config):
    from goatcounter import create_app
    app_config["TRUSTED_PROXIES"] = "10.0.0.0/8"
    app = create_app(app_config)
    make_site(app, cname=HOST)
    proxied = {"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    resp = app.test_client().get("/user/new", headers=proxied,
                                 environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert "Secure" in resp.headers["Set-Cookie"]
    # From anybody else the header is not believed.
    resp = app.test_client().get("/user/new", headers=proxied,
                                 environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert "Secure" not in resp.headers["Set-Cookie"]


@pytest.mark.parametrize(("email", "password"), [
    (EMAIL, "wrong password"),
    ("nobody@example.com", PASSWORD),
    ("token-owner@example.com", PASSWORD),  # A user without a password.
], ids=["wrong-password", "unknown-email", "no-password"])
def test_wrong_sign_in(app, client, site, email, password):
    resp = sign_in(client, email=email, password=password)
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "Wrong email or password." in html
    assert f'value="{email}"' in html  # What was typed is kept, but never the password.
    assert password not in html
    assert dashboard(client).status_code == 303
    assert query(app, "SELECT count(*) FROM users WHERE login_at IS NOT NULL")[0][0] == 0


def test_missing_fields(client, site):
    token = form_token(client)
    resp = client.post("/user/requestlogin", headers={"Host": HOST},
                       data={"csrf": token, "email": EMAIL})
    assert resp.status_code == 400
    assert "Enter your email address and password." in resp.get_data(as_text=True)


def test_unknown_email_and_wrong_password_do_the_same_work(app, site, monkeypatch):
    # "The same time" by construction: each costs exactly one password hash, so no
    # timing needs measuring here.
    import werkzeug.security
    calls = []
    real = werkzeug.security.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        calls.append(pwhash.split("$")[0])
        return real(pwhash, password)

    monkeypatch.setattr("goatcounter.accounts.passwords.check_password_hash", counting)
    with app.app_context():
        conn = db.get_db()
        for email in (EMAIL, "nobody@example.com", "token-owner@example.com"):
            calls.clear()
            assert logins.check(conn, site, email, "wrong password") is None
            assert calls == [passwords.METHOD]


def test_user_of_a_child_site_signs_in_there(app, client, site):
    with app.app_context():
        db.write(lambda conn: sites.create(conn, cname="child.example.com", parent=site["id"]))
    assert sign_in(client, host="child.example.com").headers["Location"] == "/"
    assert "<h1>Dashboard</h1>" in dashboard(client, "child.example.com").get_data(as_text=True)


def test_user_of_another_site_is_refused(app, client, site):
    other, _ = make_site(app, cname="other.example.com", email="x@example.com")
    add_user(app, other["id"], "other@example.com")
    # Not a user of this site: the form says what it says to any wrong email.
    assert sign_in(client, email="other@example.com").status_code == 400
    # Signed in to the other site, its cookie brought here (say, a second port of the
    # same host, where browsers send the same cookies): 403, and no numbers.
    assert sign_in(client, email="other@example.com",
                   host="other.example.com").status_code == 303
    value = client.get_cookie("session", domain="other.example.com").value
    client.set_cookie("session", value, domain=HOST)
    resp = dashboard(client)
    assert resp.status_code == 403
    html = resp.get_data(as_text=True)
    assert "signed in to another site" in html and "<h1>Dashboard</h1>" not in html
    # The header offers to sign out, but no way into this site's pages.
    assert "Sign out" in html and 'aria-label="Main"' not in html
    # The form lets such a visitor sign in here.
    assert sign_in(client).headers["Location"] == "/"
    assert dashboard(client).status_code == 200


def test_no_site_for_the_host(client, site):
    make_site(client.application, cname="second.example.com", email="s@example.com")
    for path in ("/", "/user/new"):
        resp = client.get(path, headers={"Host": "nope.example.com"})
        assert resp.status_code == 400
        assert resp.content_type == "text/html; charset=utf-8"
        assert "No site at this domain" in resp.get_data(as_text=True)


# The CSRF token ------------------------------------------------------------------------

def test_sign_in_without_csrf_is_refused(app, client, site):
    form_token(client)
    resp = client.post("/user/requestlogin", headers={"Host": HOST},
                       data={"email": EMAIL, "password": PASSWORD})
    assert resp.status_code == 400
    assert resp.content_type == "text/html; charset=utf-8"
    assert "this form has expired" in resp.get_data(as_text=True).lower()
    assert dashboard(client).status_code == 303
    assert query(app, "SELECT count(*) FROM users WHERE login_key IS NOT NULL")[0][0] == 0


def test_sign_out_without_csrf_changes_nothing(app, client, site):
    sign_in(client)
    for data in ({}, {"csrf": "forged"}):
        resp = client.post("/user/logout", headers={"Host": HOST}, data=data)
        assert resp.status_code == 400
        assert dashboard(client).status_code == 200
    assert query(app, "SELECT count(*) FROM users WHERE login_key IS NOT NULL")[0][0] == 1


def test_token_of_another_session_is_refused(app, site):
    first, second = app.test_client(), app.test_client()
    token = form_token(first)
    form_token(second)
    resp = second.post("/user/requestlogin", headers={"Host": HOST},
                       data={"csrf": token, "email": EMAIL, "password": PASSWORD})
    assert resp.status_code == 400


def test_token_changes_at_sign_in(client, site):
    before = form_token(client)
    sign_in(client)
    after = csrf_of(dashboard(client).get_data(as_text=True))
    assert after != before
    resp = client.post("/user/logout", headers={"Host": HOST}, data={"csrf": before})
    assert resp.status_code == 400


def test_api_needs_no_csrf(api):
    assert api.post("/api/v0/count", {"no_sessions": True, "hits": [{"path": "/x"}]}
                    ).status_code == 202


# Sessions that end ---------------------------------------------------------------------

def test_new_password_ends_every_session(app, client, site, runner):
    sign_in(client)
    old = session_cookie(client)
    other = app.test_client()
    sign_in(other)
    (user_id,) = query(app, "SELECT id FROM users WHERE email = :e", {"e": EMAIL})[0]
    result = runner.invoke(args=["db", "update", "user", "--id", str(user_id),
                                 "--password", "a new password"])
    assert result.exit_code == 0, result.output
    for c in (client, other):
        assert dashboard(c).status_code == 303
    # The cookie from before, sent again as it was: still refused.
    fresh = app.test_client()
    fresh.set_cookie("session", old, domain=HOST)
    assert dashboard(fresh).status_code == 303
    assert sign_in(fresh).status_code == 400
    assert sign_in(fresh, password="a new password").status_code == 303
    assert dashboard(fresh).status_code == 200


def test_sign_out_ends_the_other_sessions_too(app, client, site):
    sign_in(client)
    other = app.test_client()
    sign_in(other)
    html = dashboard(client).get_data(as_text=True)
    client.post("/user/logout", headers={"Host": HOST}, data={"csrf": csrf_of(html)})
    assert dashboard(other).status_code == 303


def test_second_sign_in_keeps_the_first_session(app, client, site):
    sign_in(client)
    sign_in(app.test_client())
    assert dashboard(client).status_code == 200


@pytest.mark.parametrize("change", ["user", "proof", "unsigned"])
def test_tampered_session_is_refused(app, client, site, change):
    sign_in(client)
    value = session_cookie(client)
    serializer = app.session_interface.get_signing_serializer(app)
    data = serializer.loads(value)
    if change == "user":
        data["uid"] = data["uid"] - 1  # The token owner, whose proof this is not.
        forged = serializer.dumps(data)
    elif change == "proof":
        data["auth"] = "0" * 64
        forged = serializer.dumps(data)
    else:
        payload, _, _sig = value.rpartition(".")
        forged = payload + ".AAAA"
    fresh = app.test_client()
    fresh.set_cookie("session", forged, domain=HOST)
    assert dashboard(fresh).status_code == 303


def test_session_lasts_a_while_of_disuse(app, client, site):
    sign_in(client)
    cookie = client.get_cookie("session", domain=HOST)
    assert cookie.expires is not None
    days = (cookie.expires.timestamp() - clock.now()) / 86400
    assert 29 < days <= 30


# The rate limit ------------------------------------------------------------------------

@pytest.fixture
def limited(app_config):
    from goatcounter import create_app
    app_config["RATELIMIT"] = "login:3/60"
    app = create_app(app_config)
    site, _ = make_site(app, cname=HOST, email="token-owner@example.com")
    add_user(app, site["id"], EMAIL)
    return app


def test_sign_in_is_limited_per_ip(limited):
    clock.freeze(1_800_000_000.0)
    client = limited.test_client()
    token = form_token(client)
    for i in range(3):
        resp = client.post("/user/requestlogin", headers={"Host": HOST},
                           data={"csrf": token, "email": f"u{i}@example.com", "password": "x"})
        assert resp.status_code == 400
    resp = client.post("/user/requestlogin", headers={"Host": HOST},
                       data={"csrf": token, "email": EMAIL, "password": PASSWORD})
    assert resp.status_code == 429
    assert resp.content_type == "text/html; charset=utf-8"
    assert "Rate limited exceeded; try again in" in resp.get_data(as_text=True)
    assert resp.headers["Retry-After"] == "60"
    # Another address may still sign in, and the same one once the minute is over.
    other = limited.test_client()
    resp = other.post("/user/requestlogin", headers={"Host": HOST},
                      environ_base={"REMOTE_ADDR": "192.0.2.7"},
                      data={"csrf": form_token(other), "email": EMAIL, "password": PASSWORD})
    assert resp.status_code == 303
    clock.advance(61)
    resp = client.post("/user/requestlogin", headers={"Host": HOST},
                       data={"csrf": token, "email": EMAIL, "password": PASSWORD})
    assert resp.status_code == 303


def test_sign_in_is_limited_per_email(limited):
    clock.freeze(1_800_000_000.0)
    for i in range(3):
        client = limited.test_client()
        resp = client.post("/user/requestlogin", headers={"Host": HOST},
                           environ_base={"REMOTE_ADDR": f"192.0.2.{i + 1}"},
                           data={"csrf": form_token(client), "email": EMAIL.upper(),
                                 "password": "wrong"})
        assert resp.status_code == 400
    client = limited.test_client()
    resp = client.post("/user/requestlogin", headers={"Host": HOST},
                       environ_base={"REMOTE_ADDR": "192.0.2.99"},
                       data={"csrf": form_token(client), "email": EMAIL, "password": PASSWORD})
    assert resp.status_code == 429
    assert "Retry-After" in resp.headers
    assert dashboard(client).status_code == 303


def test_login_limit_can_be_turned_off(app_config):
    from goatcounter import create_app
    app_config["RATELIMIT"] = "login:none"
    app = create_app(app_config)
    assert app.extensions["goatcounter_limits"]["login"] is None

"""The settings pages (dashboard/settings/) through Flask's client: each form changes what
it says, shows bad input beside the field and stores nothing then, agrees with the API,
refuses a POST without its CSRF token, and keeps to upstream's access levels."""
from __future__ import annotations

import gzip
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from goatcounter import clock
from goatcounter.accounts import passwords, totp, users
from goatcounter.storage import db
from tests.conftest import API, UA, make_site, query
from tests.test_signin import csrf_of

HOST = "stats.example.com"
EMAIL = "admin@example.com"
PASSWORD = "correct horse battery"


class Pages:
    """A signed-in browser of one user, as the test client sees it."""

    def __init__(self, client: FlaskClient, host: str = HOST) -> None:
        self.client, self.host = client, host
        self.token = ""

    def get(self, path: str, **kwargs: Any):
        resp = self.client.get(path, headers={"Host": self.host}, **kwargs)
        if resp.mimetype != "text/html":
            return resp
        html = resp.get_data(as_text=True)
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        if found:
            self.token = found.group(1)
        return resp

    def post(self, path: str, data: dict[str, Any] | None = None, csrf: bool = True,
             **kwargs: Any):
        if csrf and not self.token:
            self.get("/user/pref")
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.token
        return self.client.post(path, headers={"Host": self.host}, data=form, **kwargs)

    def sign_in(self, email: str = EMAIL, password: str = PASSWORD):
        resp = self.client.get("/user/new", headers={"Host": self.host})
        token = csrf_of(resp.get_data(as_text=True))
        return self.client.post("/user/requestlogin", headers={"Host": self.host},
                                data={"csrf": token, "email": email, "password": password})


def set_password(app: Flask, user_id: int, password: str = PASSWORD) -> None:
    hashed = passwords.hash_password(password)
    with app.app_context():
        db.write(lambda conn: users.set_password(conn, user_id, hashed))


def add_user(app: Flask, site_id: int, email: str, access: str = "a") -> dict:
    with app.app_context():
        user = db.write(lambda conn: users.create(conn, site_id=site_id, email=email,
                                                  access=access))
    set_password(app, user["id"])
    return user


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    """A site whose admin (the token's user) has a password, and a signed-in page."""
    site, token = make_site(app, cname=HOST, email=EMAIL)
    set_password(app, 1)
    pages = Pages(app.test_client())
    assert pages.sign_in().status_code == 303
    return {"site": site, "token": token, "api": API(app.test_client(), token, HOST),
            "pages": pages}


def errors_of(html: str) -> dict[str, str]:
    """The field errors a page shows, by field (as text, unescaped)."""
    import html as markup
    return {k: markup.unescape(v) for k, v in
            re.findall(r'<p class="field-error" id="([^"]+)-error">([^<]*)</p>', html)}


def assert_page(resp, status: int) -> str:
    html = resp.get_data(as_text=True)
    assert resp.status_code == status, html[-2000:]
    assert resp.content_type == "text/html; charset=utf-8"
    return html


# Site settings -------------------------------------------------------------------------

MAIN = {"link_domain": "https://example.com", "cname": HOST, "settings.public": "private",
        "settings.secret": "", "settings.allow_embed": "", "settings.data_retention": "0",
        "settings.ignore_ips": "", "settings.collect": ["256", "128", "2", "4", "8", "16"],
        "settings.collect_regions": "US"}


def test_site_settings_show_in_the_api(world):
    pages, api, site = world["pages"], world["api"], world["site"]
    html = assert_page(pages.get("/settings/main"), 200)
    assert 'name="settings.ignore_ips"' in html and "Add my address" in html
    form = {**MAIN, "settings.ignore_ips": "192.0.2.1, 2001:db8::1",
            "settings.data_retention": "90", "settings.allow_counter": "on",
            "settings.public": "secret", "settings.secret": "abcdefgh1234",
            "settings.collect": ["2", "4"]}
    resp = pages.post("/settings/main", form)
    assert (resp.status_code, resp.headers["Location"]) == (303, "/settings/main")
    assert "Saved." in pages.get("/settings/main").get_data(as_text=True)
    got = api.get(f"/api/v0/sites/{site['id']}").get_json()["setttings"]
    assert got["ignore_ips"] == "192.0.2.1,2001:db8::1"
    assert (got["data_retention"], got["allow_counter"], got["public"], got["secret"]) == \
        (90, True, "secret", "abcdefgh1234")
    # Unticked collect flags are cleared (the API's PATCH would only add bits).
    assert got["collect"] == 2 | 4
    assert api.get(f"/api/v0/sites/{site['id']}").get_json()["link_domain"] == \
        "https://example.com"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("settings.ignore_ips", "192.0.2.300", "must be a valid IPv4 or IPv6 address"),
    ("settings.data_retention", "-5", "must be 31 or higher"),
    ("settings.data_retention", "lots", "must be a whole number"),
    ("settings.data_retention", "9999", "must be 1825 or lower"),
    ("settings.allow_embed", "*", "'*' is not allowed"),
    ("link_domain", "not a url at all", "must be a valid url"),
], ids=["ip", "negative-retention", "retention-text", "long-retention", "embed-star",
        "link-domain"])
def test_site_settings_refuse_bad_input(app, world, field, value, message):
    pages = world["pages"]
    before = query(app, "SELECT settings, link_domain, updated_at FROM sites")
    resp = pages.post("/settings/main", {**MAIN, field: value})
    html = assert_page(resp, 400)
    errors = errors_of(html)
    assert errors.get(field.replace(".", "-")) == message, errors
    # What was typed stays in the form; nothing is stored.
    assert f'value="{value}"' in html
    assert [tuple(r) for r in query(app, "SELECT settings, link_domain, updated_at FROM sites")] \
        == [tuple(r) for r in before]


def test_site_settings_secret_rules_are_the_apis(world):
    pages, api, site = world["pages"], world["api"], world["site"]
    html = assert_page(pages.post("/settings/main", {**MAIN, "settings.public": "secret",
                                                      "settings.secret": "short!"}), 400)
    resp = api.patch(f"/api/v0/sites/{site['id']}",
                     {"settings": {"public": "secret", "secret": "short!"}})
    assert resp.status_code == 400
    api_errors = resp.get_json()["errors"]["settings.secret"]
    assert errors_of(html)["settings-secret"] == "; ".join(api_errors)


def test_my_address(world):
    resp = world["pages"].client.get("/settings/main/ip", headers={"Host": HOST},
                                     environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, "203.0.113.7")


# Preferences and widgets ---------------------------------------------------------------

PREF = {"timezone": "NL.Europe/Amsterdam", "date_format": "2006-01-02", "number_format": "44",
        "theme": "dark", "twenty_four_hours": "on"}


def me(world) -> dict[str, Any]:
    return world["api"].get("/api/v0/me").get_json()["user"]["settings"]


def test_preferences_show_in_me_and_on_every_page(world):
    pages = world["pages"]
    html = assert_page(pages.get("/user/pref"), 200)
    assert '<datalist id="zone-list">' in html and "Netherlands: Europe/Amsterdam" in html
    resp = pages.post("/user/pref", {**PREF, "timezone": "Europe/Amsterdam"})
    assert resp.status_code == 303
    got = me(world)
    assert (got["timezone"], got["date_format"], got["number_format"], got["theme"],
            got["twenty_four_hours"], got["sunday_starts_week"]) == \
        ("NL.Europe/Amsterdam", "2006-01-02", 44, "dark", True, False)
    # The theme is the page's from now on, the dashboard's too.
    assert '<html lang="en" data-theme="dark">' in pages.get("/").get_data(as_text=True)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("timezone", "Mars/Olympus_Mons", 'unknown timezone: "Mars/Olympus_Mons"'),
    ("number_format", "7", "must be one of the formats listed"),
    ("date_format", "%Y", "must be one of the formats listed"),
    ("theme", "neon", "must be one of ‘, light, dark’"),
])
def test_preferences_refuse_bad_input(app, world, field, value, message):
    before = me(world)
    html = assert_page(world["pages"].post("/user/pref", {**PREF, field: value}), 400)
    assert errors_of(html)[field] == message
    assert me(world) == before


def test_preferences_as_site_defaults(app, world):
    pages, api = world["pages"], world["api"]
    assert pages.post("/user/pref", {**PREF, "set_site": "on"}).status_code == 303
    defaults = api.get("/api/v0/sites/1").get_json()["user_defaults"]
    assert defaults["timezone"] == "NL.Europe/Amsterdam" and defaults["theme"] == "dark"


def widget_form(widgets: list[dict[str, Any]], **extra: str) -> dict[str, Any]:
    form: dict[str, Any] = {}
    for i, w in enumerate(widgets):
        form[f"widgets[{i}].n"] = w["n"]
        form[f"widgets[{i}].index"] = str(i)
        for key, value in (w.get("s") or {}).items():
            if value is True:
                form[f"widgets[{i}].s.{key}"] = "on"
            elif value not in (False, None):
                form[f"widgets[{i}].s.{key}"] = str(value)
    form.update(extra)
    return form


def test_widgets_add_remove_reorder_configure(world):
    pages = world["pages"]
    html = assert_page(pages.get("/user/dashboard"), 200)
    assert "Top referrers" in html and 'value="remove:0"' in html
    widgets = me(world)["widgets"]
    names = [w["n"] for w in widgets]

    widgets[0]["s"]["limit_pages"] = 25
    widgets[0]["s"]["style"] = "bar"
    assert pages.post("/user/dashboard", widget_form(widgets, action="save")).status_code == 303
    assert me(world)["widgets"][0]["s"] == {"limit_pages": 25, "limit_refs": 10, "style": "bar"}

    assert pages.post("/user/dashboard", widget_form(widgets, action="down:0")).status_code == 303
    assert [w["n"] for w in me(world)["widgets"]] == [names[1], names[0], *names[2:]]

    widgets = me(world)["widgets"]
    assert "Top referrers" in pages.get("/").get_data(as_text=True)
    assert pages.post("/user/dashboard", widget_form(widgets, action="remove:2")).status_code == 303
    assert [w["n"] for w in me(world)["widgets"]] == [names[1], names[0], *names[3:]]
    # The dashboard follows at once.
    assert names[2] == "toprefs" and "Top referrers" not in pages.get("/").get_data(as_text=True)

    widgets = me(world)["widgets"]
    resp = pages.post("/user/dashboard", widget_form(widgets, action="add:0", new="toprefs"))
    assert resp.status_code == 303
    assert me(world)["widgets"][-1] == {"n": "toprefs", "s": {"key": None, "limit": 6}}

    # The index fields order them too (what the script's reordering sends).
    widgets = me(world)["widgets"]
    form = widget_form(widgets, action="save")
    form["widgets[0].index"] = "99"
    assert pages.post("/user/dashboard", form).status_code == 303
    assert me(world)["widgets"][-1]["n"] == widgets[0]["n"]

    assert pages.post("/user/dashboard", {"reset": "on"}).status_code == 303
    assert [w["n"] for w in me(world)["widgets"]] == names


def test_widgets_refuse_bad_input(world):
    pages = world["pages"]
    before = me(world)
    widgets = me(world)["widgets"]
    widgets[0]["s"]["limit_pages"] = 500
    html = assert_page(pages.post("/user/dashboard", widget_form(widgets)), 400)
    assert errors_of(html)["widgets-0-s-limit_pages"] == "must be 100 or lower"
    html = assert_page(pages.post("/user/dashboard", {"action": "save"}), 400)
    assert "empty dashboard" in html
    assert me(world) == before


# Password and two-factor sign-in -------------------------------------------------------

def test_password_change_ends_other_sessions(app, world):
    pages = world["pages"]
    other = Pages(app.test_client())
    assert other.sign_in().status_code == 303
    assert other.get("/").status_code == 200
    resp = pages.post("/user/change-password", {"c_password": "wrong one", "password": "x",
                                                 "password2": "y"})
    errors = errors_of(assert_page(resp, 400))
    assert errors == {"c_password": "this is not your current password",
                      "password": "must be at least 8 characters",
                      "password2": "the two new passwords are not the same"}
    assert other.get("/").status_code == 200
    resp = pages.post("/user/change-password", {"c_password": PASSWORD,
                                                 "password": " new secret words ",
                                                 "password2": " new secret words "})
    assert resp.status_code == 303
    assert pages.get("/").status_code == 200  # this session goes on
    assert other.get("/").status_code == 303  # the other one ended
    assert Pages(app.test_client()).sign_in(password=PASSWORD).status_code == 400
    assert Pages(app.test_client()).sign_in(password=" new secret words ").status_code == 303


def secret_of(app: Flask, user_id: int = 1) -> str:
    return query(app, "SELECT totp_secret FROM users WHERE id = ?", (user_id,))[0][0]


def test_two_factor_sign_in(app, world):
    pages = world["pages"]
    clock.freeze(1_800_000_000)
    html = assert_page(pages.get("/user/auth"), 200)
    assert '<svg width="' in html and 'class="qr"' in html
    secret = secret_of(app)
    assert " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) in html
    # The QR code is the otpauth address, drawn here.
    from goatcounter.dashboard.settings.auth import qr_svg
    assert str(qr_svg(totp.uri(secret, EMAIL))) in html

    resp = pages.post("/user/enable-totp", {"totp_token": "000000"})
    assert errors_of(assert_page(resp, 400))["totp_token"] == totp.WRONG_CODE
    assert pages.post("/user/enable-totp",
                      {"totp_token": totp.code_now(secret)}).status_code == 303
    assert world["api"].get("/api/v0/me").get_json()["user"]["totp_enabled"] is True

    # Signing in now takes a code; the one used to turn it on is spent.
    browser = Pages(app.test_client())
    resp = browser.sign_in()
    html = assert_page(resp, 200)
    assert 'action="/user/totplogin"' in html and browser.client.get(
        "/", headers={"Host": HOST}).status_code == 303
    ticket = re.search(r'name="ticket" value="([^"]+)"', html).group(1)
    token = csrf_of(html)
    form = {"csrf": token, "ticket": ticket, "totp_token": totp.code_now(secret)}
    resp = browser.client.post("/user/totplogin", headers={"Host": HOST}, data=form)
    assert resp.status_code == 400 and totp.WRONG_CODE in resp.get_data(as_text=True)
    clock.advance(30)
    form["totp_token"] = totp.code_now(secret)
    resp = browser.client.post("/user/totplogin", headers={"Host": HOST}, data=form)
    assert (resp.status_code, resp.headers["Location"]) == (303, "/")
    assert browser.client.get("/", headers={"Host": HOST}).status_code == 200
    # A forged ticket signs nobody in.
    stranger = Pages(app.test_client())
    stranger.get("/user/new")
    resp = stranger.client.post("/user/totplogin", headers={"Host": HOST}, data={
        "csrf": stranger.token, "ticket": ticket[:-2] + "xx", "totp_token": "123456"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/user/new"

    # Turning it off needs the password.
    resp = pages.post("/user/disable-totp", {"d_password": "not it"})
    assert errors_of(assert_page(resp, 400))["d_password"] == "this is not your current password"
    assert pages.post("/user/disable-totp", {"d_password": PASSWORD}).status_code == 303
    assert query(app, "SELECT totp_enabled, totp_secret FROM users WHERE id = 1")[0][:] == \
        (0, None)
    assert Pages(app.test_client()).sign_in().status_code == 303


def test_two_factor_ticket_expires(app, world):
    pages = world["pages"]
    clock.freeze(1_800_000_000)
    pages.get("/user/auth")
    secret = secret_of(app)
    pages.post("/user/enable-totp", {"totp_token": totp.code_now(secret)})
    browser = Pages(app.test_client())
    html = browser.sign_in().get_data(as_text=True)
    ticket = re.search(r'name="ticket" value="([^"]+)"', html).group(1)
    import time as real_time
    # itsdangerous dates tickets by the wall clock.
    real = real_time.time
    try:
        real_time.time = lambda: real() + 601  # type: ignore[assignment]
        clock.advance(601)
        resp = browser.client.post("/user/totplogin", headers={"Host": HOST}, data={
            "csrf": csrf_of(html), "ticket": ticket, "totp_token": totp.code_now(secret)})
    finally:
        real_time.time = real  # type: ignore[assignment]
    assert resp.status_code == 303 and resp.headers["Location"] == "/user/new"


# API keys ------------------------------------------------------------------------------

def test_api_keys(app, world):
    pages, site = world["pages"], world["site"]
    html = assert_page(pages.get("/user/api"), 200)
    assert "Record pageviews" in html
    resp = pages.post("/user/api-token", {"name": "backup", "permissions": ["64", "4"],
                                          "sites": [str(site["id"])]})
    html = assert_page(resp, 200)
    secret = re.search(r'id="new-key" class="mono" aria-label="The new API key"', html) and \
        re.search(r'readonly value="([0-9a-z]+)" id="new-key"', html).group(1)
    assert "shown only this once" in html
    key = API(app.test_client(), secret, HOST)
    assert key.get("/api/v0/stats/total").status_code == 200
    assert key.get("/api/v0/sites").status_code == 403  # no site-read
    # Listed with its permissions and site, never with its secret again.
    html = assert_page(pages.get("/user/api"), 200)
    assert "backup" in html and "Read statistics, Export" in html and secret not in html
    (row,) = query(app, "SELECT id, sites, permissions FROM api_tokens WHERE name = 'backup'")
    assert (json.loads(row["sites"]), row["permissions"]) == ([site["id"]], 64 | 4)
    # The CLI lists it the same way.
    listed = app.test_cli_runner().invoke(args=["db", "list", "apitokens"]).output
    assert "backup" in listed and "perm=export,stats" in listed
    assert pages.post(f"/user/api-token/remove/{row['id']}").status_code == 303
    assert key.get("/api/v0/stats/total").status_code == 401


@pytest.mark.parametrize(("form", "field"), [
    ({"name": "", "permissions": ["2"], "sites": ["-1"]}, "name"),
    ({"name": "x", "sites": ["-1"]}, "permissions"),
    ({"name": "x", "permissions": ["2"]}, "sites"),
    ({"name": "x", "permissions": ["2"], "sites": ["999"]}, "sites"),
])
def test_api_key_form_refuses(app, world, form, field):
    html = assert_page(world["pages"].post("/user/api-token", form), 400)
    assert field in errors_of(html)
    assert query(app, "SELECT count(*) FROM api_tokens")[0][0] == 1


def test_someone_elses_key_is_not_revoked(app, world):
    other = add_user(app, 1, "other@example.com")
    with app.app_context():
        from goatcounter.accounts import tokens
        db.write(lambda conn: tokens.create_token(conn, user=other, name="theirs",
                                                  permissions=tokens.PERM_STATS))
    (row,) = query(app, "SELECT id FROM api_tokens WHERE name = 'theirs'")
    assert_page(world["pages"].post(f"/user/api-token/remove/{row[0]}"), 404)
    assert query(app, "SELECT count(*) FROM api_tokens")[0][0] == 2


# Users ---------------------------------------------------------------------------------

def test_add_a_read_only_user(app, world):
    pages = world["pages"]
    resp = pages.post("/settings/users/add", {"email": "reader@example.com", "access": "r"})
    html = assert_page(resp, 200)
    password = re.search(r'readonly value="([^"]+)" id="new-password"', html).group(1)
    assert "shown only this once" in html
    reader = Pages(app.test_client())
    assert reader.sign_in("reader@example.com", password).status_code == 303
    assert reader.get("/").status_code == 200
    for path in ("/settings/main", "/settings/users", "/settings/sites", "/settings/export",
                 "/settings/purge", "/user/api"):
        assert_page(reader.get(path), 403)
    for path in ("/user/pref", "/user/dashboard", "/user/auth"):
        assert_page(reader.get(path), 200)
    # Their header links to their own settings, and the tabs leave out the site's.
    html = reader.get("/user/pref").get_data(as_text=True)
    assert 'href="/user/pref"' in html and "/settings/main" not in html
    # A POST to an admin's form changes nothing either.
    resp = reader.post("/settings/users/add", {"email": "sneaky@example.com", "access": "a"})
    assert_page(resp, 403)
    assert not query(app, "SELECT 1 FROM users WHERE email = 'sneaky@example.com'")


def test_settings_user_sees_site_settings_only(app, world):
    add_user(app, 1, "settings@example.com", access="s")
    user = Pages(app.test_client())
    user.sign_in("settings@example.com")
    for path in ("/settings/main", "/settings/export", "/settings/purge", "/user/pref"):
        assert_page(user.get(path), 200)
    for path in ("/settings/users", "/settings/sites", "/user/api"):
        assert_page(user.get(path), 403)


def test_users_change_and_remove(app, world):
    pages = world["pages"]
    reader = add_user(app, 1, "reader@example.com", access="r")
    assert pages.post(f"/settings/users/{reader['id']}", {
        "email": "reader2@example.com", "access": "s", "password": ""}).status_code == 303
    got = query(app, "SELECT email, access FROM users WHERE id = ?", (reader["id"],))[0]
    assert (got["email"], json.loads(got["access"])) == ("reader2@example.com", {"all": "s"})
    # Taken emails, and superuser from an admin, are refused.
    html = assert_page(pages.post(f"/settings/users/{reader['id']}", {
        "email": EMAIL, "access": "s"}), 400)
    assert errors_of(html)["email"] == "there is a user with this email already"
    with app.app_context():
        db.write(lambda conn: users.set_access(conn, users.get(conn, 1), "a"))
    html = assert_page(pages.post("/settings/users/add", {"email": "s@example.com",
                                                          "access": "*"}), 400)
    assert errors_of(html)["access"] == "only a superuser can make superusers"
    assert pages.post(f"/settings/users/remove/{reader['id']}").status_code == 303
    assert not query(app, "SELECT 1 FROM users WHERE id = ?", (reader["id"],))


def test_last_admin_stays(app, world):
    pages = world["pages"]
    html = assert_page(pages.post("/settings/users/remove/1"), 400)
    assert "needs at least one admin" in html
    html = assert_page(pages.post("/settings/users/1", {"email": EMAIL, "access": "r"}), 400)
    assert "needs at least one admin" in errors_of(html)["access"]
    assert json.loads(query(app, "SELECT access FROM users WHERE id = 1")[0][0]) == \
        {"all": "a"}
    # With a second admin the first may go.
    add_user(app, 1, "second@example.com", access="a")
    assert pages.post("/settings/users/1", {"email": EMAIL, "access": "r"}).status_code == 303


def test_users_of_another_account_are_not_found(app, world):
    make_site(app, cname="other.example.com", email="other@example.com")
    (other,) = query(app, "SELECT id FROM users WHERE email = 'other@example.com'")
    pages = world["pages"]
    assert_page(pages.get(f"/settings/users/{other[0]}"), 404)
    assert_page(pages.post(f"/settings/users/remove/{other[0]}"), 404)
    assert_page(pages.post(f"/settings/users/{other[0]}", {"email": "x@example.com",
                                                            "access": "r"}), 404)
    assert query(app, "SELECT email FROM users WHERE id = ?", (other[0],))[0][0] == \
        "other@example.com"


# Sites ---------------------------------------------------------------------------------

def test_sites_add_copy_remove(app, world):
    pages, api = world["pages"], world["api"]
    pages.post("/settings/main", {**MAIN, "settings.data_retention": "60"})
    assert pages.post("/settings/sites/add", {"cname": "child.example.com"}).status_code == 303
    listed = api.get("/api/v0/sites").get_json()["sites"]
    child = next(s for s in listed if s["cname"] == "child.example.com")
    assert child["parent"] == 1 and child["setttings"]["data_retention"] == 60
    html = assert_page(pages.post("/settings/sites/add", {"cname": "child.example.com"}), 400)
    assert errors_of(html)["cname"] == "already exists"
    assert_page(pages.post("/settings/sites/add", {"cname": "nodots"}), 400)

    pages.post("/settings/main", {**MAIN, "settings.data_retention": "120"})
    resp = pages.post("/settings/sites/copy-settings", {"sites": [str(child["id"])]})
    assert resp.status_code == 303
    assert api.get(f"/api/v0/sites/{child['id']}").get_json()["setttings"][
        "data_retention"] == 120

    html = assert_page(pages.get(f"/settings/sites/remove/{child['id']}"), 200)
    assert "Yes, remove it" in html
    assert pages.post(f"/settings/sites/remove/{child['id']}").status_code == 303
    assert [s["id"] for s in api.get("/api/v0/sites").get_json()["sites"]] == [1]
    # The first site can't go; adding the domain again brings the child back.
    assert_page(pages.post("/settings/sites/remove/1"), 400)
    assert pages.post("/settings/sites/add", {"cname": "child.example.com"}).status_code == 303
    assert child["id"] in [s["id"] for s in api.get("/api/v0/sites").get_json()["sites"]]


def test_sites_of_another_account_are_not_found(app, world):
    other, _ = make_site(app, cname="other.example.com", email="other@example.com")
    pages = world["pages"]
    assert_page(pages.get(f"/settings/sites/remove/{other['id']}"), 404)
    assert_page(pages.post(f"/settings/sites/remove/{other['id']}"), 404)
    assert_page(pages.post("/settings/sites/copy-settings", {"sites": [str(other["id"])]}), 404)
    assert query(app, "SELECT state FROM sites WHERE id = ?", (other["id"],))[0][0] == "a"


def test_settings_of_another_site_are_refused(app, world):
    make_site(app, cname="other.example.com", email="other@example.com")
    value = world["pages"].client.get_cookie("session", domain=HOST).value
    stranger = world["pages"].client
    stranger.set_cookie("session", value, domain="other.example.com")
    for path in ("/settings/main", "/user/pref", "/settings/users", "/user/api"):
        resp = stranger.get(path, headers={"Host": "other.example.com"})
        assert resp.status_code == 403, path
        assert "signed in to another site" in resp.get_data(as_text=True)


# Purge and merge -----------------------------------------------------------------------

def count_hits(api: API, *paths: str, n: int = 1) -> None:
    hits = [{"path": p, "user_agent": UA, "ip": f"81.2.69.{i}", "ref": "https://ref.example.org/",
             "session": f"s{i}-{p}"} for p in paths for i in range(n)]
    assert api.post("/api/v0/count", {"hits": hits}).status_code == 202


def totals(api: API) -> dict[str, Any]:
    paths = {p["path"] for p in api.get("/api/v0/paths").get_json()["paths"]}
    total = api.get("/api/v0/stats/total").get_json()["total"]
    refs = sum(r["count"] for r in api.get("/api/v0/stats/toprefs").get_json()["stats"])
    browsers = sum(r["count"] for r in api.get("/api/v0/stats/browsers").get_json()["stats"])
    return {"paths": paths, "total": total, "refs": refs, "browsers": browsers}


def test_purge_a_path(app, world):
    pages, api = world["pages"], world["api"]
    count_hits(api, "/keep", n=2)
    count_hits(api, "/old/a", "/old/b", n=3)
    assert totals(api) == {"paths": {"/keep", "/old/a", "/old/b"}, "total": 8, "refs": 8,
                           "browsers": 8}
    html = assert_page(pages.get("/settings/purge?path=/old/"), 200)
    ids = re.findall(r'name="paths" value="(\d+)"', html)
    assert len(ids) == 2 and "/keep</label>" not in html and "/old/a</label>" in html
    html = assert_page(pages.post("/settings/purge", {"paths": ids}), 200)
    assert "This deletes <strong>6 pageviews</strong>" in html
    assert totals(api)["total"] == 8  # asking changed nothing
    resp = pages.post("/settings/purge", {"paths": ids, "confirm": "yes"})
    assert resp.status_code == 303
    assert totals(api) == {"paths": {"/keep"}, "total": 2, "refs": 2, "browsers": 2}
    assert query(app, "SELECT count(*) FROM hits")[0][0] == 2
    assert query(app, "SELECT sum(pageviews) FROM site_counts")[0][0] == 2
    # Counted again, the path is a new one with only its new hits.
    count_hits(api, "/old/a")
    assert totals(api)["total"] == 3
    export = api.post("/api/v0/export", {}).get_json()
    text = gzip.decompress(api.get(f"/api/v0/export/{export['id']}/download").get_data())
    assert text.decode().count("/old/a") == 1


def test_merge_paths(app, world):
    pages, api = world["pages"], world["api"]
    count_hits(api, "/a", n=2)
    count_hits(api, "/A-copy", "/a/index.html", n=3)
    paths = {p["path"]: p["id"] for p in api.get("/api/v0/paths").get_json()["paths"]}
    target = paths["/a"]
    sources = [str(paths["/A-copy"]), str(paths["/a/index.html"])]
    form = {"paths": sources, "merge_with": str(target)}
    html = assert_page(pages.post("/settings/merge", form), 200)
    assert "This moves <strong>6 pageviews</strong>" in html
    assert pages.post("/settings/merge", {**form, "confirm": "yes"}).status_code == 303
    got = totals(api)
    assert got == {"paths": {"/a"}, "total": 8, "refs": 8, "browsers": 8}
    hits = api.get("/api/v0/stats/hits").get_json()["hits"]
    assert [(h["path"], h["count"]) for h in hits] == [("/a", 8)]
    assert query(app, "SELECT count(DISTINCT path_id) FROM hits")[0][0] == 1


def test_purge_asks_for_paths_of_this_site(app, world):
    other, token = make_site(app, cname="other.example.com", email="other@example.com")
    count_hits(API(app.test_client(), token, "other.example.com"), "/theirs")
    (theirs,) = query(app, "SELECT id FROM paths WHERE site_id = ?", (other["id"],))
    resp = world["pages"].post("/settings/purge", {"paths": [str(theirs[0])], "confirm": "yes"})
    assert_page(resp, 400)
    assert query(app, "SELECT count(*) FROM hits WHERE site_id = ?", (other["id"],))[0][0] == 1


# Export --------------------------------------------------------------------------------

def test_export_from_the_page_is_the_apis_file(world):
    pages, api = world["pages"], world["api"]
    count_hits(api, "/one", "/two")
    assert pages.post("/settings/export", {"startFrom": "0"}).status_code == 303
    html = assert_page(pages.get("/settings/export"), 200)
    (export_id,) = re.findall(r'href="/settings/export/(\d+)"', html)
    page_file = pages.get(f"/settings/export/{export_id}")
    assert page_file.status_code == 200 and page_file.mimetype == "application/gzip"
    api_file = api.get(f"/api/v0/export/{export_id}/download")
    assert page_file.get_data() == api_file.get_data()
    assert b"/one" in gzip.decompress(page_file.get_data())
    assert_page(pages.post("/settings/export", {"startFrom": "-1"}), 400)


# CSRF and access on every form ---------------------------------------------------------

def post_routes(app: Flask) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if "POST" in (rule.methods or ()) and rule.endpoint.split(".")[0] in (
                "settings", "settings_users", "settings_sites", "settings_purge",
                "settings_export", "user_prefs", "user_auth", "user_api"):
            out.append((rule.endpoint, rule.rule))
    return sorted(out)


TABLES = ("sites", "users", "api_tokens", "paths", "hits", "exports", "site_counts")


def snapshot(app: Flask) -> dict[str, list[tuple]]:
    return {t: [tuple(r) for r in query(app, f"SELECT * FROM {t}")] for t in TABLES}


def test_every_settings_form_refuses_a_post_without_csrf(app, world):
    pages, api = world["pages"], world["api"]
    count_hits(api, "/p")
    reader = add_user(app, 1, "reader@example.com", access="r")
    child, _ = make_site(app, cname="child.example.com", parent=1, email="c@example.com")
    (path_id,) = query(app, "SELECT id FROM paths")
    before = snapshot(app)
    values = {"token_id": 1, "user_id": reader["id"], "site_id": child["id"], "export_id": 1}
    forms_by_route = {
        "/settings/main": MAIN, "/user/pref": PREF, "/user/dashboard": {"reset": "on"},
        "/user/change-password": {"c_password": PASSWORD, "password": "a new password",
                                  "password2": "a new password"},
        "/user/api-token": {"name": "x", "permissions": ["2"], "sites": ["-1"]},
        "/settings/users/add": {"email": "new@example.com", "access": "a"},
        "/settings/sites/add": {"cname": "new.example.com"},
        "/settings/sites/copy-settings": {"allsites": "on"},
        "/settings/purge": {"paths": [str(path_id[0])], "confirm": "yes"},
        "/settings/merge": {"paths": [str(path_id[0])], "merge_with": "1", "confirm": "yes"},
        "/settings/export": {"startFrom": "0"},
    }
    routes = [*post_routes(app), ("signin.totp_login", "/user/totplogin")]
    assert len(routes) >= 18
    for endpoint, rule in routes:
        path = rule
        for name, value in values.items():
            path = path.replace(f"<int:{name}>", str(value))
        for forged in (None, "not-the-token"):
            data = dict(forms_by_route.get(rule, {"email": EMAIL, "access": "r"}))
            if forged:
                data["csrf"] = forged
            resp = pages.post(path, data, csrf=False)
            assert resp.status_code == 400, (endpoint, resp.status_code)
            assert "This form has expired" in resp.get_data(as_text=True)
    assert snapshot(app) == before
    assert pages.get("/").status_code == 200  # still signed in: the sign-out was refused too

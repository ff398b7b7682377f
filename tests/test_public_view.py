"""Public and secret dashboards (SiteSettings.public) and share links: who sees `/`
without an account, and that nothing else opens to them."""
from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from goatcounter import clock
from goatcounter.accounts import share_links
from goatcounter.storage import db
from tests.conftest import API, NO_LIMITS, make_site, query
from tests.test_signin import EMAIL, HOST, add_user, csrf_of, sign_in

RATELIMIT = NO_LIMITS + ",login:none"
SECRET = "TheSitesOwnSecret0123456789"
PATH = "/a-page-counted-here"


@pytest.fixture
def site(app: Flask, client: FlaskClient) -> dict:
    site, token = make_site(app, cname=HOST, email="token-owner@example.com")
    add_user(app, site["id"], EMAIL)
    api = API(client, token, HOST)
    body = {"no_sessions": True, "hits": [{"path": PATH}]}
    assert api.post("/api/v0/count", body).status_code == 202
    site["api"] = api
    return site


def set_public(site: dict, value: str, secret: str = "") -> None:
    resp = site["api"].patch(f"/api/v0/sites/{site['id']}",
                             {"settings": {"public": value, "secret": secret}})
    assert resp.status_code == 200, resp.get_json()


def get(client: FlaskClient, url: str = "/"):
    return client.get(url, headers={"Host": HOST})


def assert_shown(resp) -> str:
    assert resp.status_code == 200, (resp.status_code, resp.headers.get("Location"))
    html = resp.get_data(as_text=True)
    assert PATH in html, "the dashboard shows the counted path"
    return html


def assert_sent_to_sign_in(resp) -> None:
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/user/new"
    assert PATH not in resp.get_data(as_text=True)


def make_link(app: Flask, site: dict, name: str = "for the board",
              expires_at: str | None = None) -> tuple[str, dict]:
    with app.app_context():
        return db.write(lambda conn: share_links.create(conn, site["id"], name, None,
                                                        expires_at))


def open_with(client: FlaskClient, secret: str, then: str = "/"):
    """Open the dashboard with ?access-token=, as a shared address does, and follow the
    redirect that takes the secret out of the address."""
    first = get(client, "/?access-token=" + secret + ("&period-start=2026-11-01"
                                                        if then != "/" else ""))
    assert first.status_code == 303
    assert "access-token" not in first.headers["Location"]
    return get(client, first.headers["Location"])


def test_private_is_the_default(client, site):
    assert_sent_to_sign_in(get(client))


def test_public_shows_the_dashboard_to_anyone(client, site):
    set_public(site, "public")
    html = assert_shown(get(client))
    # Read-only: no navigation to settings, no sign-out button of somebody's.
    assert "Settings" not in html and "Sign out" not in html


def test_public_opens_nothing_else(client, site):
    set_public(site, "public")
    for path in ("/settings/share",):
        assert_sent_to_sign_in(get(client, path))
    resp = client.post("/settings/share", headers={"Host": HOST}, data={"name": "x"})
    assert resp.status_code in (303, 400)
    assert query(client.application, "SELECT count(*) FROM share_links")[0][0] == 0
    # The API still needs its token.
    assert client.get("/api/v0/stats/total", headers={"Host": HOST}).status_code == 401


def test_secret_needs_the_secret(client, site):
    set_public(site, "secret", SECRET)
    assert_sent_to_sign_in(get(client))
    first = get(client, "/?access-token=" + SECRET)
    assert first.status_code == 303 and first.headers["Location"] == "/"
    cookie = client.get_cookie("access-token", domain=HOST)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert_shown(get(client))


def test_the_address_keeps_its_other_parameters(client, site):
    set_public(site, "secret", SECRET)
    first = get(client, "/?period-start=2026-11-01&access-token=" + SECRET + "&filter=x")
    assert first.status_code == 303
    assert first.headers["Location"] == "/?period-start=2026-11-01&filter=x"


@pytest.mark.parametrize("wrong", ["nope", SECRET[:-1], SECRET + "x", ""])
def test_a_wrong_secret_opens_nothing(client, site, wrong):
    set_public(site, "secret", SECRET)
    assert_sent_to_sign_in(open_with(client, wrong))


def test_the_secret_means_nothing_on_a_private_site(client, site):
    set_public(site, "secret", SECRET)
    set_public(site, "private", SECRET)
    assert_sent_to_sign_in(open_with(client, SECRET))


def test_a_live_share_link_opens_the_dashboard(app, client, site):
    secret, link = make_link(app, site)
    clock.freeze(clock.now())
    assert_shown(open_with(client, secret))
    used = query(app, "SELECT last_used_at FROM share_links WHERE id = ?", (link["id"],))
    assert used[0][0] == clock.now_text()


def test_share_links_work_on_a_private_site_and_beside_the_secret(app, client, site):
    set_public(site, "secret", SECRET)
    secret, _ = make_link(app, site)
    assert_shown(open_with(client, secret))
    other = app.test_client()
    assert_shown(open_with(other, SECRET))


def test_an_expired_link_opens_nothing(app, client, site):
    now = int(clock.now())
    clock.freeze(now)
    secret, _ = make_link(app, site, expires_at=clock.rfc3339(now + 3600))
    assert_shown(open_with(client, secret))
    clock.freeze(now + 3600)
    # The cookie it left behind is worth nothing now either.
    assert_sent_to_sign_in(get(client))
    assert_sent_to_sign_in(open_with(app.test_client(), secret))


def test_a_revoked_link_opens_nothing_at_once(app, client, site):
    secret, link = make_link(app, site)
    assert_shown(open_with(client, secret))
    with app.app_context():
        assert db.write(lambda conn: share_links.revoke(conn, site["id"], link["id"]))
    assert_sent_to_sign_in(get(client))


def test_a_link_of_another_site_opens_nothing_here(app, client, site):
    other, _ = make_site(app, cname="other.example.com")
    secret, _ = make_link(app, other)
    assert_sent_to_sign_in(open_with(client, secret))


def test_admin_makes_lists_and_revokes_links(app, client, site):
    assert sign_in(client).status_code == 303
    page = get(client, "/settings/share")
    assert page.status_code == 200
    token = csrf_of(page.get_data(as_text=True))
    made = client.post("/settings/share", headers={"Host": HOST},
                       data={"csrf": token, "name": "for Ann", "lifetime": "7d"})
    assert made.status_code == 200
    html = made.get_data(as_text=True)
    url = re.search(r'id="new-link-url"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*id="new-link-url"',
                    html)
    assert url is not None
    address = url.group(1) or url.group(2)
    assert address.startswith(f"http://{HOST}/?access-token=")
    secret = address.split("access-token=", 1)[1]
    # The secret is shown once: not on the list, not stored.
    listing = get(client, "/settings/share").get_data(as_text=True)
    assert "for Ann" in listing and secret not in listing
    assert query(app, "SELECT count(*) FROM share_links WHERE secret_hash = ?",
                 (secret,))[0][0] == 0
    assert_shown(open_with(app.test_client(), secret))
    link_id = query(app, "SELECT id FROM share_links")[0][0]
    revoked = client.post(f"/settings/share/{link_id}/revoke", headers={"Host": HOST},
                          data={"csrf": token})
    assert revoked.status_code == 303
    assert_sent_to_sign_in(open_with(app.test_client(), secret))
    again = client.post(f"/settings/share/{link_id}/revoke", headers={"Host": HOST},
                        data={"csrf": token})
    assert again.status_code == 404


def test_link_form_errors_and_csrf(app, client, site):
    assert sign_in(client).status_code == 303
    token = csrf_of(get(client, "/settings/share").get_data(as_text=True))
    bad = client.post("/settings/share", headers={"Host": HOST},
                      data={"csrf": token, "name": "", "lifetime": "forever"})
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert "give the link a name" in html and "choose one of the offered lifetimes" in html
    forged = client.post("/settings/share", headers={"Host": HOST},
                         data={"name": "x", "lifetime": ""})
    assert forged.status_code == 400
    assert query(app, "SELECT count(*) FROM share_links")[0][0] == 0


def test_only_admins_manage_links(app, client, site):
    add_user(app, site["id"], "reader@example.com", access="r")
    assert sign_in(client, email="reader@example.com").status_code == 303
    assert get(client, "/settings/share").status_code == 403
    assert_shown(get(client))

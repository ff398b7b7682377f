"""Authentication and permissions, spec section 2 and 3."""
from __future__ import annotations

import base64
import datetime as dt

import pytest

from goatcounter import clock
from goatcounter.accounts import sites, tokens, users
from goatcounter.storage import db
from tests import engines
from tests.conftest import API, assert_error, make_site, query


def test_me_returns_user_and_token(api):
    resp = api.get("/api/v0/me")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["token"] == {"name": "test", "permissions": tokens.PERM_ALL, "sites": [-1]}
    assert body["user"]["email"] == "admin@example.com"
    assert body["user"]["access"] == {"all": "a"}
    assert list(body["user"]) == ["id", "site", "email", "email_verified", "totp_enabled",
                                  "access", "login_at", "open_at", "reset_at", "settings",
                                  "last_report_at", "created_at", "updated_at"]


@pytest.mark.parametrize(("header", "message"), [
    (None, "no Authorization header"),
    ("", "no Authorization header"),
    ("   ", "no Authorization header"),
    ("Bearer", "wrong format for Authorization header"),
    ("Bearer a b", "wrong format for Authorization header"),
    ("bearer {token}", "wrong format for Authorization header"),
    ("BEARER {token}", "wrong format for Authorization header"),
    ("Token {token}", "wrong format for Authorization header"),
    ("Basic !!!notbase64", "wrong format for Authorization header"),
    # Standard base64 only: a stray character or missing padding is not skipped over.
    ("Basic YW!Jj", "wrong format for Authorization header"),
    ("Basic YWI", "wrong format for Authorization header"),
    ("Basic {basic_stray}", "wrong format for Authorization header"),
    # "abc" is valid base64 without a colon: upstream goes on with an empty token.
    ("Basic YWJj", "unknown token"),
    ("Bearer not-a-real-token", "unknown token"),
    ("Bearer {token}x", "unknown token"),
    ("Bearer {upper}", "unknown token"),
])
def test_auth_errors(client, site_token, header, message):
    site, token = site_token
    headers = {"Host": site["cname"], "Content-Type": "application/json"}
    if header is not None:
        basic = base64.b64encode(f"x:{token}".encode()).decode()
        headers["Authorization"] = header.format(token=token, upper=token.upper(),
                                                 basic_stray=basic[:4] + "*" + basic[4:])
    resp = client.get("/api/v0/me", headers=headers)
    assert_error(resp, 401, message)
    assert resp.headers["WWW-Authenticate"] == "Basic realm=GoatCounter"


def test_basic_auth_uses_the_part_after_the_colon(client, site_token):
    site, token = site_token
    value = base64.b64encode(f"anything:{token}".encode()).decode()
    resp = client.get("/api/v0/me", headers={"Host": site["cname"],
                                              "Authorization": f"Basic {value}"})
    assert resp.status_code == 200


def test_extra_whitespace_in_header_is_fine(client, site_token):
    site, token = site_token
    resp = client.get("/api/v0/me", headers={"Host": site["cname"],
                                              "Authorization": f"  Bearer    {token}  "})
    assert resp.status_code == 200


def test_token_limited_to_other_site_is_forbidden(app, client):
    site, _ = make_site(app, cname="a.example.com")
    _other, token = make_site(app, cname="b.example.com", parent=site["id"],
                             email="x@example.com", token_sites=[site["id"]])
    # The token belongs to the account (site a) but may only use site a.
    resp = client.get("/api/v0/me", headers={"Host": "b.example.com",
                                              "Authorization": f"Bearer {token}"})
    assert_error(resp, 403, "this token does not have access to this site")


def test_token_of_another_account_is_unknown(app, client):
    make_site(app, cname="a.example.com")
    _, token_b = make_site(app, cname="b.example.com", email="b@example.com")
    resp = client.get("/api/v0/me", headers={"Host": "a.example.com",
                                              "Authorization": f"Bearer {token_b}"})
    assert_error(resp, 401, "unknown token")


@pytest.mark.parametrize("access", ["r", "s"])
def test_non_admin_user_can_not_use_tokens(app, client, access):
    site, token = make_site(app, access=access)
    resp = client.get("/api/v0/me", headers={"Host": site["cname"],
                                              "Authorization": f"Bearer {token}"})
    assert_error(resp, 401, "only admins can create and use API keys")


def test_superuser_can_use_tokens(app, client):
    # Upstream's first user of a site made from the command line is a superuser (`*`):
    # everything an admin may do, a superuser may too.
    site, token = make_site(app, access="*")
    headers = {"Host": site["cname"], "Authorization": f"Bearer {token}"}
    resp = client.get("/api/v0/me", headers=headers)
    assert resp.status_code == 200
    assert resp.get_json()["user"]["access"] == {"all": "*"}
    assert client.get("/api/v0/sites", headers=headers).status_code == 200


def test_unknown_host_with_several_sites(app, client):
    make_site(app, cname="a.example.com")
    _, token = make_site(app, cname="b.example.com", email="b@example.com")
    resp = client.get("/api/v0/me", headers={"Host": "nope.example.com",
                                              "Authorization": f"Bearer {token}"})
    assert_error(resp, 400, 'no site at this domain ("nope.example.com")')


def test_single_site_serves_any_host(app, client, site_token):
    _, token = site_token
    resp = client.get("/api/v0/me", headers={"Host": "127.0.0.1:9999",
                                              "Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


@pytest.mark.parametrize(("perms", "required", "status"), [
    (tokens.PERM_COUNT, tokens.PERM_STATS, 403),
    (tokens.PERM_STATS, tokens.PERM_STATS, 200),
    (tokens.PERM_COUNT | tokens.PERM_EXPORT, tokens.PERM_EXPORT, 200),
    (tokens.PERM_COUNT, 0, 200),
    # Any one of the required bits is enough (spec 3).
    (tokens.PERM_COUNT, tokens.PERM_COUNT | tokens.PERM_EXPORT, 200),
    (tokens.PERM_STATS | tokens.PERM_EXPORT, tokens.PERM_STATS | tokens.PERM_COUNT, 200),
])
def test_permission_on_test_endpoint(app, client, perms, required, status):
    site, token = make_site(app, perms=perms)
    api = API(client, token, site["cname"])
    resp = api.get(f"/api/v0/test?perm={required}")
    assert resp.status_code == status
    if status == 403:
        assert_error(resp, 403, "requires 'stats' permissions")


def test_permission_message_lists_names_in_upstream_order(app, client):
    site, token = make_site(app, perms=tokens.PERM_STATS)
    api = API(client, token, site["cname"])
    resp = api.post("/api/v0/test", {"perm": tokens.PERM_EXPORT | tokens.PERM_COUNT
                                     | tokens.PERM_SITE_READ})
    assert_error(resp, 403, "requires 'count', 'export', 'site-read' permissions")


def test_tokens_are_stored_only_as_hashes(app, site_token):
    _, token = site_token
    with app.app_context():
        conn = db.get_db()
        dump = engines.dump(conn)
        assert token not in dump
        row = conn.execute("SELECT token_hash FROM api_tokens").fetchone()
        assert row["token_hash"] == tokens.hash_token(token)


def test_parse_perms():
    assert tokens.parse_perms("count,export") == 6
    assert tokens.parse_perms("site_read, site-create") == 24
    assert tokens.parse_perms("all") == tokens.PERM_ALL
    with pytest.raises(ValueError, match="unknown permission"):
        tokens.parse_perms("count,fly")
    for empty in ("", " , ", ","):
        with pytest.raises(ValueError, match="no permission given"):
            tokens.parse_perms(empty)


@pytest.mark.parametrize(("have", "levels"), [
    ("*", "*asr"), ("a", "asr"), ("s", "sr"), ("r", "r"), ("?", ""),
])
def test_access_levels_include_the_lower_ones(have, levels):
    user = {"access": {"all": have}}
    assert {level for level in "*asr" if users.has_access(user, level)} == set(levels)
    assert users.is_admin(user) == (have in ("*", "a"))


@pytest.mark.parametrize("perms", [
    0, tokens.PERM_NOTHING, 128, tokens.PERM_COUNT | 128, tokens.PERM_ALL | 256, -2])
def test_invalid_permissions_make_no_token(app, perms):
    """Only the "nothing" bit, or a bit that means nothing, is refused; nothing is stored."""
    with app.app_context():
        def run(conn):
            user = users.create(conn, site_id=sites.create(conn, cname="a.example.com")["id"],
                                email="a@example.com", access="a")
            with pytest.raises(ValueError, match=f"invalid permissions: {perms}"):
                tokens.create_token(conn, user=user, name="x", permissions=perms)
        db.write(run)
    assert query(app, "SELECT count(*) FROM api_tokens", drain=False)[0][0] == 0


def test_the_nothing_bit_is_not_stored(app, client):
    site, token = make_site(app, perms=tokens.PERM_COUNT | tokens.PERM_NOTHING)
    body = API(client, token, site["cname"]).get("/api/v0/me").get_json()
    assert body["token"]["permissions"] == tokens.PERM_COUNT
    assert query(app, "SELECT permissions FROM api_tokens", drain=False)[0][0] \
        == tokens.PERM_COUNT


def last_used(app) -> str | None:
    return query(app, "SELECT last_used_at FROM api_tokens", drain=False)[0][0]


def test_last_used_at_is_written_at_most_once_every_24_hours(app, api):
    clock.freeze(dt.datetime(2026, 11, 20, 23, 50, tzinfo=dt.UTC))
    assert last_used(app) is None
    assert api.get("/api/v0/me").status_code == 200
    assert last_used(app) == "2026-11-20T23:50:00Z"
    # Past midnight, but not 24 hours later: not written again.
    clock.advance(20 * 60)
    assert api.get("/api/v0/me").status_code == 200
    assert last_used(app) == "2026-11-20T23:50:00Z"
    clock.freeze(dt.datetime(2026, 11, 21, 23, 49, 59, tzinfo=dt.UTC))
    assert api.get("/api/v0/me").status_code == 200
    assert last_used(app) == "2026-11-20T23:50:00Z"
    clock.advance(1)
    assert api.get("/api/v0/me").status_code == 200
    assert last_used(app) == "2026-11-21T23:50:00Z"


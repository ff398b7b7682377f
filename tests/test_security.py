"""Security: who may call what (every route by every permission bit), what one site can
see of another, export files, tokens at rest, body limits, and client addresses behind
a proxy."""
from __future__ import annotations

import base64
import gzip
import hmac
import io
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from goatcounter import clock, create_app
from goatcounter.accounts import tokens, users
from goatcounter.counting import pending
from goatcounter.public.pixel import GIF
from goatcounter.storage import db
from tests.conftest import API, NO_LIMITS, UA, assert_error, make_site
from tests.conftest import query as _query

RATELIMIT = NO_LIMITS


def hits_body(*paths: str, ref: str = "") -> dict[str, Any]:
    return {"hits": [{"path": p, "ref": ref, "user_agent": UA, "ip": "81.2.69.160"}
                     for p in paths]}


def query(app: Flask, sql: str, args: dict[str, Any] | None = None) -> list[tuple]:
    return [tuple(r) for r in _query(app, sql, args or {})]


# The permission matrix ------------------------------------------------------------------

PUBLIC = None
ANY_TOKEN = 0
# Pages: signed in to with the session cookie (tests/test_signin.py), never with a token.
PAGE = "page"
# The permission each route needs, by endpoint and method. A route that is added without
# an entry here fails test_every_route_has_an_entry, so that nobody forgets to decide.
REQUIRED: dict[tuple[str, str], int | str | None] = {
    ("api.test", "GET"): ANY_TOKEN,
    ("api.test", "POST"): ANY_TOKEN,
    ("api.me", "GET"): ANY_TOKEN,
    ("count.api_count", "POST"): tokens.PERM_COUNT,
    ("export.start", "POST"): tokens.PERM_EXPORT,
    ("export.status", "GET"): tokens.PERM_EXPORT,
    ("export.download", "GET"): tokens.PERM_EXPORT,
    ("sites.list_sites", "GET"): tokens.PERM_SITE_READ,
    ("sites.get_site", "GET"): tokens.PERM_SITE_READ,
    ("sites.create_site", "PUT"): tokens.PERM_SITE_CREATE,
    ("sites.update_site", "POST"): tokens.PERM_SITE_UPDATE,
    ("sites.update_site", "PATCH"): tokens.PERM_SITE_UPDATE,
    ("stats.list_paths", "GET"): tokens.PERM_STATS,
    ("stats.stats_total", "GET"): tokens.PERM_STATS,
    ("stats.stats_hits", "GET"): tokens.PERM_STATS,
    ("stats.stats_path_refs", "GET"): tokens.PERM_STATS,
    ("stats.stats_page", "GET"): tokens.PERM_STATS,
    ("stats.stats_detail", "GET"): tokens.PERM_STATS,
    ("stats.api_description", "GET"): PUBLIC,
    ("countjs.count_js", "GET"): PUBLIC,
    ("counter.visitor_counter", "GET"): PUBLIC,
    ("pages.static", "GET"): PAGE,
    ("signin.new", "GET"): PAGE,
    ("signin.request_login_form", "GET"): PAGE,
    ("signin.request_login", "POST"): PAGE,
    ("signin.logout", "POST"): PAGE,
    ("dashboard.home", "GET"): PAGE,
    ("sharing.share_page", "GET"): PAGE,
    ("sharing.create_link", "POST"): PAGE,
    ("sharing.revoke_link", "POST"): PAGE,
    ("signin.totp_login", "POST"): PAGE,
    ("settings.index", "GET"): PAGE,
    ("settings.main", "GET"): PAGE,
    ("settings.save_main", "POST"): PAGE,
    ("settings.my_ip", "GET"): PAGE,
    ("user_prefs.index", "GET"): PAGE,
    ("user_prefs.pref", "GET"): PAGE,
    ("user_prefs.save_pref", "POST"): PAGE,
    ("user_prefs.widgets", "GET"): PAGE,
    ("user_prefs.save_widgets", "POST"): PAGE,
    ("user_auth.auth", "GET"): PAGE,
    ("user_auth.change_password", "POST"): PAGE,
    ("user_auth.enable_totp", "POST"): PAGE,
    ("user_auth.disable_totp", "POST"): PAGE,
    ("user_api.index", "GET"): PAGE,
    ("user_api.create", "POST"): PAGE,
    ("user_api.remove", "POST"): PAGE,
    ("settings_users.index", "GET"): PAGE,
    ("settings_users.add_form", "GET"): PAGE,
    ("settings_users.add", "POST"): PAGE,
    ("settings_users.edit_form", "GET"): PAGE,
    ("settings_users.edit", "POST"): PAGE,
    ("settings_users.remove", "POST"): PAGE,
    ("settings_sites.index", "GET"): PAGE,
    ("settings_sites.add", "POST"): PAGE,
    ("settings_sites.remove_form", "GET"): PAGE,
    ("settings_sites.remove", "POST"): PAGE,
    ("settings_sites.copy_settings", "POST"): PAGE,
    ("settings_purge.purge", "GET"): PAGE,
    ("settings_purge.purge_paths", "POST"): PAGE,
    ("settings_purge.merge", "POST"): PAGE,
    ("settings_export.export", "GET"): PAGE,
    ("settings_export.start_export", "POST"): PAGE,
    ("settings_export.download", "GET"): PAGE,
    ("settings_export.start_import", "POST"): PAGE,
    ("settings_export.import_status", "GET"): PAGE,
    ("live.page", "GET"): PAGE,
    ("live.entries_json", "GET"): PAGE,
}
API_ROUTES = [k for k, v in REQUIRED.items() if v not in (PUBLIC, PAGE)]
# Pages open to a signed-out browser.
OPEN_PAGES = {"pages.static", "signin.new"}
# Methods every route answers without a token by design: CORS preflights, and HEAD,
# which the API refuses with a 405 as upstream does.
IMPLICIT = {"HEAD", "OPTIONS"}


def routes(app: Flask) -> list[tuple[str, str, Any]]:
    """(endpoint, method, rule) for every route the app has."""
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - IMPLICIT):
            out.append((rule.endpoint, method, rule))
    return out


def test_every_route_has_an_entry(app):
    found = {(endpoint, method) for endpoint, method, _ in routes(app)}
    assert found - REQUIRED.keys() == set(), "routes without a permission in REQUIRED"
    assert REQUIRED.keys() - found == set(), "REQUIRED lists routes that don't exist"


@pytest.fixture
def world(app) -> dict[str, Any]:
    return make_world(app)


def make_world(app: Flask) -> dict[str, Any]:
    """A site with a hit, a path, an export and an all-permission token."""
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    assert api.post("/api/v0/count", hits_body("/page")).status_code == 202
    export = api.post("/api/v0/export", {})
    assert export.status_code == 202
    path_id = query(app, "SELECT id FROM paths")[0][0]
    # The visitor counter is public once the site allows it.
    assert api.patch(f"/api/v0/sites/{site['id']}",
                     {"settings": {"allow_counter": True}}).status_code == 200
    return {"site": site, "token": token, "export_id": export.get_json()["id"],
            "path_id": path_id}


def token_with(app: Flask, site: dict[str, Any], perms: int) -> str:
    with app.app_context():
        def run(conn: sqlite3.Connection) -> str:
            user = users.get(conn, 1)
            assert user is not None and user["site_id"] == site["id"]
            return tokens.create_token(conn, user=user, name=f"perm-{perms}",
                                     permissions=perms)[0]
        return db.write(run)


def url_args(rule: Any, world: dict[str, Any]) -> dict[str, Any]:
    values = {"export_id": world["export_id"], "site_id": world["site"]["id"],
              "filename": "style.css",
              "path_id": world["path_id"], "page": "browsers", "ident": "Firefox",
              "rest": "//page.json", "link_id": 1, "token_id": 1, "user_id": 1,
              "upload_id": 1}
    missing = set(rule.arguments) - values.keys()
    assert not missing, f"add a value for {missing} of {rule.rule} to url_args"
    return {name: values[name] for name in rule.arguments}


def request_body(endpoint: str, method: str, world: dict[str, Any], n: int) -> Any:
    if endpoint == "count.api_count":
        return hits_body(f"/matrix/{n}")
    if endpoint == "sites.create_site":
        return {"cname": f"child{n}.example.com"}
    if (endpoint, method) == ("sites.update_site", "POST"):
        # POST replaces the site: keep the name the requests find it by, and the
        # visitor counter on.
        return {"cname": world["site"]["cname"], "settings": {"allow_counter": True}}
    return {}


BITS = [pytest.param(bit, id=name) for bit, name in tokens.PERM_NAMES]
BITS.append(pytest.param(tokens.PERM_ALL, id="all"))


@pytest.mark.parametrize("perms", BITS)
def test_permission_matrix(app, world, perms):
    token = token_with(app, world["site"], perms)
    api = API(app.test_client(), token, world["site"]["cname"])
    adapter = app.url_map.bind(world["site"]["cname"])
    wrong = []
    for n, (endpoint, method, rule) in enumerate(routes(app)):
        need = REQUIRED[(endpoint, method)]
        url = adapter.build(endpoint, url_args(rule, world), method=method)
        body = request_body(endpoint, method, world, n) if method != "GET" else None
        resp = api.request(method, url, body)
        if need is None or need == PAGE:
            # Public: the same reply without any token. A page: a token changes nothing
            # (signed out, the dashboard sends you to the sign-in form).
            anonymous = app.test_client().open(url, method=method,
                                               headers={"Host": world["site"]["cname"]})
            ok = resp.status_code == anonymous.status_code
            if need is None:
                ok = ok and resp.status_code == 200
            elif method == "GET" and endpoint not in OPEN_PAGES:
                # Every page but sign-in's sends a signed-out browser to the sign-in form.
                ok = ok and resp.status_code == 303
            elif method != "GET":
                # No session, no form token: refused before anything runs.
                ok = ok and resp.status_code == 400
        elif isinstance(need, int) and need and not perms & need:
            names = ", ".join(f"'{name}'" for name in tokens.perm_names(need))
            ok = resp.status_code == 403 and \
                resp.get_json() == {"error": f"requires {names} permissions"}
        else:
            ok = resp.status_code < 400 or (resp.status_code in (400, 404, 410) and \
                "permission" not in resp.get_data(as_text=True))
        if not ok:
            wrong.append(f"{method} {rule.rule}: {resp.status_code} "
                         f"{resp.get_data(as_text=True)[:200]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("endpoint", "method"), API_ROUTES)
def test_every_api_route_needs_a_token(app, world, endpoint, method):
    rule = next(r for e, m, r in routes(app) if (e, m) == (endpoint, method))
    url = app.url_map.bind("x").build(endpoint, url_args(rule, world), method=method)
    body = None if method == "GET" else "{}"
    resp = app.test_client().open(url, method=method, data=body, headers={
        "Host": world["site"]["cname"], "Content-Type": "application/json"})
    assert_error(resp, 401, "no Authorization header")


# Isolation between sites ----------------------------------------------------------------

@pytest.fixture
def two_accounts(app) -> dict[str, Any]:
    """Accounts A (with a child site A2) and B, each with hits and an export."""
    a, token_a = make_site(app, cname="a.example.com", email="a@example.com")
    a2, _ = make_site(app, cname="a2.example.com", parent=a["id"], email="a2@example.com")
    b, token_b = make_site(app, cname="b.example.com", email="b@example.com")
    api_a = API(app.test_client(), token_a, "a.example.com")
    api_b = API(app.test_client(), token_b, "b.example.com")
    assert api_a.post("/api/v0/count", hits_body("/a-page")).status_code == 202
    assert api_b.post("/api/v0/count", hits_body(
        "/b-secret", "/b-other", ref="https://b-only.example.org/x")).status_code == 202
    export_a = api_a.post("/api/v0/export", {}).get_json()
    export_b = api_b.post("/api/v0/export", {}).get_json()
    b_paths = dict(query(app, "SELECT path, id FROM paths WHERE site_id = :s", {"s": b["id"]}))
    return {"a": a, "a2": a2, "b": b, "api_a": api_a, "api_b": api_b, "token_a": token_a,
            "export_a": export_a, "export_b": export_b, "b_paths": b_paths}


def test_exports_of_another_account_are_not_found(two_accounts):
    t = two_accounts
    api_a, b_id = t["api_a"], t["export_b"]["id"]
    assert_error(api_a.get(f"/api/v0/export/{b_id}"), 404, "not found")
    assert_error(api_a.get(f"/api/v0/export/{b_id}/download"), 404, "not found")
    own = api_a.get(f"/api/v0/export/{t['export_a']['id']}/download")
    assert own.status_code == 200
    text = gzip.decompress(own.get_data()).decode()
    assert "/a-page" in text and "/b-" not in text


def test_paths_of_another_account_are_invisible(two_accounts):
    t = two_accounts
    resp = t["api_a"].get("/api/v0/paths?limit=200")
    assert resp.status_code == 200
    got = resp.get_json()["paths"]
    assert [p["path"] for p in got] == ["/a-page"]
    assert not {p["id"] for p in got} & set(t["b_paths"].values())


def test_stats_of_another_account_are_invisible(two_accounts):
    t = two_accounts
    api_a = t["api_a"]
    b_id = t["b_paths"]["/b-secret"]
    refs = api_a.get(f"/api/v0/stats/hits/{b_id}")
    assert refs.status_code == 200 and refs.get_json()["refs"] == []
    total = api_a.get(f"/api/v0/stats/total?include_paths={b_id}")
    assert total.status_code == 200 and total.get_json()["total"] == 0
    for url in ("/api/v0/stats/hits", f"/api/v0/stats/hits?include_paths={b_id}",
                "/api/v0/stats/toprefs", "/api/v0/stats/browsers",
                "/api/v0/stats/toprefs/b-only.example.org", "/api/v0/stats/locations/GB"):
        resp = api_a.get(url)
        assert resp.status_code == 200, (url, resp.get_data(as_text=True))
        text = resp.get_data(as_text=True)
        assert "b-secret" not in text and "b-other" not in text and "b-only" not in text, url
    # Site A's own numbers count only site A's single hit.
    browsers = api_a.get("/api/v0/stats/browsers").get_json()["stats"]
    assert sum(s["count"] for s in browsers) == 1
    assert api_a.get("/api/v0/stats/total").get_json()["total"] == 1


def test_sites_of_another_account_are_not_found(app, two_accounts):
    t = two_accounts
    api_a, b = t["api_a"], t["b"]
    listed = api_a.get("/api/v0/sites").get_json()["sites"]
    assert {s["id"] for s in listed} == {t["a"]["id"], t["a2"]["id"]}
    assert_error(api_a.get(f"/api/v0/sites/{b['id']}"), 404, "not found")
    for method in ("POST", "PATCH"):
        resp = api_a.request(method, f"/api/v0/sites/{b['id']}", {"cname": "stolen.example.com"})
        assert_error(resp, 404, "not found")
    assert query(app, "SELECT cname FROM sites WHERE id = :id", {"id": b["id"]}) == \
        [("b.example.com",)]


def test_a_child_site_can_not_see_its_parent(two_accounts):
    t = two_accounts
    api_a2 = API(t["api_a"].client, t["token_a"], "a2.example.com")
    assert api_a2.get(f"/api/v0/sites/{t['a2']['id']}").status_code == 200
    assert_error(api_a2.get(f"/api/v0/sites/{t['a']['id']}"), 404, "not found")


def test_a_token_does_not_open_another_account(app, two_accounts):
    t = two_accounts
    api = API(t["api_a"].client, t["token_a"], "b.example.com")
    for url in ("/api/v0/me", "/api/v0/paths", f"/api/v0/export/{t['export_b']['id']}",
                "/api/v0/sites"):
        assert_error(api.get(url), 401, "unknown token")
    before = query(app, "SELECT count(*) FROM hits WHERE site_id = :s", {"s": t["b"]["id"]})
    assert_error(api.post("/api/v0/count", hits_body("/planted")), 401, "unknown token")
    assert query(app, "SELECT count(*) FROM hits WHERE site_id = :s",
                 {"s": t["b"]["id"]}) == before


# Export files ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["..", "../1", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "1%2F..",
                                 "1;cat", "-1", "0x1", "1e3", "%00", "1%00", "~", "."])
def test_export_ids_can_not_reach_files(app, world, raw):
    api = API(app.test_client(), world["token"], world["site"]["cname"])
    for suffix in ("", "/download"):
        resp = api.get(f"/api/v0/export/{raw}{suffix}")
        assert resp.status_code in (400, 404), (raw, suffix, resp.status_code)
        assert resp.headers["Content-Type"].startswith("application/json")
        assert "root:" not in resp.get_data(as_text=True)


def test_a_tampered_path_never_leaves_the_exports_folder(app, world, tmp_path):
    api = API(app.test_client(), world["token"], world["site"]["cname"])
    export_id = world["export_id"]
    (row,) = query(app, "SELECT path FROM exports WHERE id = :id", {"id": export_id})
    folder = Path(row[0]).parent
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    link = folder / "goatcounter-export-link.csv.gz"
    link.symlink_to(secret)
    for path in (str(secret), "/etc/passwd", str(folder / ".." / "goatcounter.sqlite3"),
                 str(folder), str(link), "secret.txt", f"{folder}/../../secret.txt"):
        with app.app_context():
            db.write(lambda c, p=path: c.execute(
                "UPDATE exports SET path = :p WHERE id = :id", {"p": p, "id": export_id}))
        resp = api.get(f"/api/v0/export/{export_id}/download")
        assert_error(resp, 410)
    assert secret.read_text() == "private"


# Tokens at rest -------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["sqlite", "memory"])
def test_tokens_appear_nowhere_in_the_stored_files(app_config, storage):
    # With every limit on: the limit store sees a key for each request.
    app_config.update(RATELIMIT="api:60/120,api-count:60/120,export:10/3600,auth:30/120",
                      RATELIMIT_STORAGE=storage)
    app = create_app(app_config)
    world_ = make_world(app)
    token = world_["token"]
    api = API(app.test_client(), token, world_["site"]["cname"])
    # Use it on every kind of route and in every form, so that anything it could leave
    # behind is there.
    api.post("/api/v0/count", hits_body("/t"), headers={"Idempotency-Key": "k1"})
    api.get("/api/v0/stats/total")
    api.post("/api/v0/export", {})
    basic = base64.b64encode(f"someone:{token}".encode()).decode()
    api.get("/api/v0/me", headers={"Authorization": f"Basic {basic}"})
    # Only the prefix the index finds it by is kept: no longer piece of the token.
    secret = token[tokens.PREFIX_LENGTH - 2:]
    pieces = [secret[i:i + 12].encode() for i in range(len(secret) - 11)] + [basic.encode()]
    digest = tokens.hash_token(token).encode()
    if storage == "memory":
        limiter = app.extensions["goatcounter_limiter"]
        keys = list(limiter.storage.storage) + list(limiter.storage.expirations)
        assert keys and all(n.decode() not in k for k in keys for n in [*pieces, digest]), keys
    for path in Path(app.instance_path).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.name.endswith(".gz"):
                data += gzip.decompress(data)
            # The main database keeps the hash, in api_tokens; nothing else may.
            main = path.name.startswith("goatcounter.sqlite3")
            needles = pieces if main else [*pieces, digest]
            assert not [n for n in needles if n in data], path
    (stored,) = query(app, "SELECT token_prefix, token_hash FROM api_tokens WHERE id = 1")
    assert tuple(stored) == (token[:tokens.PREFIX_LENGTH], tokens.hash_token(token))


def test_a_wrong_token_with_the_right_prefix_is_refused(app, world):
    token = world["token"]
    api = API(app.test_client(), token, world["site"]["cname"])
    assert api.get("/api/v0/me").status_code == 200
    prefix = token[:tokens.PREFIX_LENGTH]
    other = "0" if token[-1] != "0" else "1"
    for wrong in (token[:-1] + other, token[:-1], token + "0", prefix, prefix + "x" * 42,
                  token[:-1] + chr(ord(token[-1]) ^ 1)):
        assert wrong.startswith(prefix)
        assert_error(API(api.client, wrong, api.host).get("/api/v0/me"), 401, "unknown token")
    assert_error(API(api.client, token.upper(), api.host).get("/api/v0/me"), 401,
                 "unknown token")


def test_tokens_sharing_a_prefix_are_told_apart_by_the_secret(app, world):
    first = world["token"]
    with app.app_context():
        def run(conn: sqlite3.Connection) -> str:
            user = users.get(conn, 1)
            return tokens.create_token(conn, user=user, name="twin", permissions=2,
                                       token=first[:tokens.PREFIX_LENGTH] + "z" * 42)[0]
        second = db.write(run)
    host = world["site"]["cname"]
    client = app.test_client()
    assert API(client, first, host).get("/api/v0/me").get_json()["token"]["name"] == "test"
    assert API(client, second, host).get("/api/v0/me").get_json()["token"]["name"] == "twin"
    assert_error(API(client, second[:-1] + "y", host).get("/api/v0/me"), 401, "unknown token")


def test_the_secret_is_compared_in_constant_time(app, world, monkeypatch):
    """The row is found by the prefix; the decision is a constant-time comparison of the
    stored hash with the hash of what was sent."""
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    token = world["token"]
    wrong = token[:-1] + ("0" if token[-1] != "0" else "1")
    api = API(app.test_client(), wrong, world["site"]["cname"])
    assert_error(api.get("/api/v0/me"), 401, "unknown token")
    assert calls == [(tokens.hash_token(token), tokens.hash_token(wrong))]


@pytest.mark.sqlite_only("traces SQLite connections and reads SQLite's plans")
def test_tokens_are_found_through_the_prefix_index(app, world):
    statements: list[str] = []
    pool = app.extensions["goatcounter_db"]
    conn = pool.get()
    conn.set_trace_callback(statements.append)
    pool.put(conn)
    API(app.test_client(), world["token"], world["site"]["cname"]).get("/api/v0/me")
    conn.set_trace_callback(None)
    lookups = [s for s in statements if "FROM api_tokens WHERE site_id" in s]
    assert lookups
    check = sqlite3.connect(app.config["DB_PATH"])
    for sql in lookups:
        plan = [row[3] for row in check.execute("EXPLAIN QUERY PLAN " + sql)]
        assert plan == ["SEARCH api_tokens USING INDEX api_tokens_prefix"
                        " (site_id=? AND token_prefix=?)"], (sql, plan)
    check.close()


def test_tokens_issued_before_prefixes_keep_working(app, world):
    """Tokens stored before the prefix column have only their hash: found by it, then
    given their prefix on first use."""
    token = world["token"]
    with app.app_context():
        # Used a moment ago, so only the missing prefix makes it write.
        db.write(lambda c: c.execute("UPDATE api_tokens SET token_prefix = NULL,"
                                     " last_used_at = :now", {"now": clock.now_text()}))
    api = API(app.test_client(), token, world["site"]["cname"])
    wrong = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert_error(API(api.client, wrong, api.host).get("/api/v0/me"), 401, "unknown token")
    assert query(app, "SELECT token_prefix FROM api_tokens") == [(None,)]
    assert api.get("/api/v0/me").status_code == 200
    assert query(app, "SELECT token_prefix FROM api_tokens") == [(token[:tokens.PREFIX_LENGTH],)]
    assert api.get("/api/v0/me").status_code == 200
    assert_error(API(api.client, wrong, api.host).get("/api/v0/me"), 401, "unknown token")


# Request body limits --------------------------------------------------------------------

@pytest.fixture
def small_body_app(app_config) -> Flask:
    app_config["MAX_BODY"] = 2000
    return create_app(app_config)


BIG = 2001


@pytest.mark.parametrize(("method", "url", "table"), [
    ("POST", "/api/v0/count", "hits"),
    ("PUT", "/api/v0/sites", "sites"),
    ("POST", "/api/v0/export", "exports"),
    ("PATCH", "/api/v0/sites/1", "sites"),
])
def test_large_bodies_are_refused_and_nothing_is_stored(small_body_app, method, url, table):
    app = small_body_app
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    before = query(app, f"SELECT * FROM {table}")
    if url == "/api/v0/count":
        body = json.dumps(hits_body(*[f"/p{i}" for i in range(40)]))
    else:
        body = json.dumps({"cname": "x" * 3000 + ".example.com"})
    assert len(body) >= BIG
    assert_error(api.request(method, url, body), 413, "request body is larger than 2000 bytes")
    # The same without a Content-Length: the limit holds while the body is read.
    resp = api.client.open(url, method=method, input_stream=io.BytesIO(body.encode()),
                           headers={**api.headers(), "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert_error(resp, 413, "request body is larger than 2000 bytes")
    assert query(app, f"SELECT * FROM {table}") == before


def test_bodies_up_to_the_limit_are_fine(small_body_app):
    app = small_body_app
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    body = json.dumps(hits_body("/fits"))
    assert len(body) < 2000
    assert api.request("POST", "/api/v0/count", body).status_code == 202


# Client addresses behind a proxy --------------------------------------------------------

VISITOR = "81.2.69.160"    # GB
SPOOFED = "8.8.8.8"        # US
PROXY = "127.0.0.1"


def proxy_app(app_config: dict[str, Any], trusted: str, ratelimit: str = NO_LIMITS) -> Flask:
    app = create_app({**app_config, "TRUSTED_PROXIES": trusted, "RATELIMIT": ratelimit})
    make_site(app, settings={"ignore_ips": SPOOFED})
    return app


def pixel(client: FlaskClient, path: str, remote: str, forwarded: str | None = None):
    headers = {"Host": "stats.example.com", "User-Agent": UA}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return client.get(f"/count?p={path}", headers=headers, environ_base={"REMOTE_ADDR": remote})


def counted(app: Flask) -> dict[str, tuple]:
    """Stored hits by path: (location, session)."""
    with app.app_context():
        pending.drain()
    rows = query(app, "SELECT p.path, h.location, h.session FROM hits h"
                      " JOIN paths p ON p.id = h.path_id")
    return {path: (location, session) for path, location, session in rows}


def test_forwarded_for_is_ignored_without_trusted_proxies(app_config):
    app = proxy_app(app_config, "")
    client = app.test_client()
    # A visitor who claims to be an ignored address, and then somebody else.
    assert pixel(client, "/a", VISITOR, SPOOFED).status_code == 200
    assert pixel(client, "/b", VISITOR, "1.1.1.1").status_code == 200
    assert pixel(client, "/c", VISITOR).status_code == 200
    got = counted(app)
    assert {path: loc for path, (loc, _) in got.items()} == {"/a": "GB", "/b": "GB", "/c": "GB"}
    assert len({session for _, session in got.values()}) == 1


def test_forwarded_for_is_ignored_from_an_untrusted_peer(app_config):
    app = proxy_app(app_config, "10.0.0.1")
    client = app.test_client()
    assert pixel(client, "/a", VISITOR, SPOOFED).status_code == 200
    assert pixel(client, "/b", PROXY, VISITOR).status_code == 200
    got = counted(app)
    assert got["/a"][0] == "GB"
    assert got["/b"][0] == ""  # the loopback address, as sent, has no country


def test_trusted_proxy_gives_the_visitor_address(app_config):
    app = proxy_app(app_config, PROXY)
    client = app.test_client()
    assert pixel(client, "/a", PROXY, VISITOR).status_code == 200
    assert pixel(client, "/b", PROXY, "1.1.1.1").status_code == 200
    # What a visitor writes into the header comes before what the proxy appends.
    assert pixel(client, "/c", PROXY, f"{SPOOFED}, {VISITOR}").status_code == 200
    got = counted(app)
    assert (got["/a"][0], got["/b"][0], got["/c"][0]) == ("GB", "AU", "GB")
    assert got["/a"][1] == got["/c"][1] != got["/b"][1]


def test_a_quote_from_the_client_does_not_hide_the_proxys_address(app_config):
    """What a client puts in X-Forwarded-For comes first; the proxy's item is the last,
    whatever quotes the client's part holds (werkzeug's ProxyFix read an unbalanced
    quote as the start of one value and found none: the request kept the proxy's
    address, which no rate limit applies to)."""
    app = proxy_app(app_config, PROXY, ratelimit="count:1/100")
    client = app.test_client()
    for value in (f'"{SPOOFED}, {VISITOR}', f'"x, y", {VISITOR}', f'{SPOOFED}", {VISITOR}'):
        assert pixel(client, "/q", PROXY, value).status_code in (200, 429)
    assert {path: loc for path, (loc, _) in counted(app).items()} == {"/q": "GB"}
    assert len(query(app, "SELECT 1 FROM hits")) == 1  # the others were rate limited


def test_trusted_proxy_applies_ignore_ips_to_the_visitor(app_config):
    app = proxy_app(app_config, PROXY)
    client = app.test_client()
    resp = pixel(client, "/ignored", PROXY, SPOOFED)
    assert resp.status_code == 202 and resp.get_data() == GIF
    assert "ignore list" in resp.headers["X-Goatcounter"]
    # The spoofed value before the proxy's own doesn't count.
    assert pixel(client, "/kept", PROXY, f"{SPOOFED}, {VISITOR}").status_code == 200
    assert set(counted(app)) == {"/kept"}


def test_forwarded_for_that_is_not_an_address(app_config):
    app = proxy_app(app_config, PROXY)
    client = app.test_client()
    for value in ("not-an-ip", "", " , ", "999.1.1.1", "::1::", "\u00e9"):
        resp = pixel(client, "/odd", PROXY, value.encode().decode("latin-1"))
        assert resp.status_code == 200, (value, resp.get_data())


def api_status(client: FlaskClient, remote: str, forwarded: str | None) -> int:
    headers = {"Host": "stats.example.com"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return client.get("/api/v0/me", headers=headers,
                      environ_base={"REMOTE_ADDR": remote}).status_code


def test_api_rate_limit_key_can_not_be_spoofed(app_config):
    # Requests without a token are counted per client address.
    app = proxy_app(app_config, "", ratelimit="api:2/100")
    client = app.test_client()
    got = [api_status(client, VISITOR, f"192.0.2.{i}") for i in range(4)]
    assert got == [401, 401, 429, 429]


def test_api_rate_limit_key_comes_from_a_trusted_proxy(app_config):
    app = proxy_app(app_config, PROXY, ratelimit="api:2/100")
    client = app.test_client()
    assert [api_status(client, PROXY, f"192.0.2.{i}") for i in range(4)] == [401] * 4
    assert [api_status(client, PROXY, f"{SPOOFED}, {VISITOR}") for _ in range(3)] == \
        [401, 401, 429]
    # The same visitor with another spoofed prefix is still the same visitor.
    assert api_status(client, PROXY, f"1.1.1.1, {VISITOR}") == 429


def test_export_folder_files_are_private(app, world):
    (row,) = query(app, "SELECT path FROM exports WHERE id = :id", {"id": world["export_id"]})
    assert os.stat(row[0]).st_mode & 0o077 == 0

"""What every page shares (web/pages.py, dashboard/layout.py): headers, error pages in
HTML where the API keeps JSON, the static files, and login_required."""
from __future__ import annotations

import re

import pytest
from flask import Flask

from goatcounter.dashboard import access
from goatcounter.dashboard.access import login_required
from tests.conftest import assert_error, make_site
from tests.test_signin import EMAIL, HOST, add_user, sign_in

HTML = "text/html; charset=utf-8"


@pytest.fixture
def site(app: Flask) -> dict:
    site, _ = make_site(app, cname=HOST, email="token-owner@example.com")
    add_user(app, site["id"], EMAIL)
    return site


def assert_page(resp, status: int, text: str | None = None) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.content_type == HTML
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    html = resp.get_data(as_text=True)
    assert "Traceback" not in html
    if text is not None:
        assert text in html, html
    return html


@pytest.mark.parametrize("path", ["/user/new", "/no/such/page", "/live", "/live.json"])
def test_every_page_has_the_headers(client, site, path):
    if path.startswith("/live"):
        sign_in(client)
    resp = client.get(path, headers={"Host": HOST})
    assert resp.headers["Content-Security-Policy"] == (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"


def test_no_inline_scripts_or_styles(client, site):
    sign_in(client)
    for path in ("/user/new", "/", "/live", "/live?decision=bot", "/no/such/page"):
        html = client.get(path, headers={"Host": HOST}).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html and " style=" not in html, path
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path  # No onclick= and such.
        # Nothing from elsewhere: no CDN, no outside fonts.
        assert not re.search(r'(src|href)="(https?:)?//', html), path


def test_error_pages_are_html(client, site):
    assert_page(client.get("/nope", headers={"Host": HOST}), 404, "Page not found")
    html = assert_page(client.put("/user/new", headers={"Host": HOST},
                                  data={"csrf": "x"}), 400)
    assert "This form has expired" in html
    # A wrong method with a good token: 405, naming what is allowed.
    from tests.test_signin import form_token
    token = form_token(client)
    resp = client.delete("/user/new", headers={"Host": HOST}, data={"csrf": token})
    assert_page(resp, 405, "Method not allowed")
    assert "GET" in resp.headers["Allow"]


def test_api_errors_stay_json(client, site):
    assert_error(client.get("/api/v0/nope", headers={"Host": HOST}), 404, "not found")
    assert_error(client.get("/api/v0/me", headers={"Host": HOST}), 401)
    resp = client.post("/api/v0/me", headers={"Host": HOST})
    assert resp.status_code == 405 and resp.content_type.startswith("application/json")


def test_server_error_is_a_page_without_a_traceback(app, client, site, caplog):
    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("a secret detail")

    html = assert_page(client.get("/boom", headers={"Host": HOST}), 500, "Server error")
    assert "a secret detail" not in html
    assert re.search(r"error code ‘[0-9a-z]+’", html)
    assert "a secret detail" in caplog.text


def test_error_page_without_its_template_still_answers(app, client, site, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no template")

    monkeypatch.setattr("goatcounter.web.pages.render_template", broken)
    html = assert_page(client.get("/nope", headers={"Host": HOST}), 404)
    assert "<h1>Page not found</h1>" in html


def test_messages_are_escaped(client, site):
    resp = client.get("/user/new?email=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
                      headers={"Host": HOST})
    html = assert_page(resp, 200)
    assert "<script>alert" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("name", ["style.css", "script.js"])
def test_static_files(client, name):
    html = client.get("/user/new").get_data(as_text=True)
    url = re.search(rf'"(/static/{re.escape(name)}\?v=[0-9a-f]+)"', html).group(1)
    resp = client.get(url)
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "public, max-age=31536000"
    unversioned = client.get(f"/static/{name}")
    assert unversioned.headers["Cache-Control"] == "no-cache"
    assert client.get("/static/../__init__.py").status_code == 404


def test_stylesheet_blocks_are_closed(client):
    # An unclosed block (a media query's, say) swallows every rule after it, which a
    # browser takes without a word: the pages after it lose their styles at most widths.
    css = re.sub(r"/\*.*?\*/", "", client.get("/static/style.css").get_data(as_text=True),
                 flags=re.S)
    depth = 0
    for char in css:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0, "a } without its {"
    assert depth == 0, f"{depth} blocks left open"
    # Top-level rules stay top-level: none of the pages' own rules sit inside @media.
    assert re.search(r"^\.tabs \{", css, re.M) and re.search(r"^\.field \{", css, re.M)


def test_stylesheet_has_both_themes(client):
    css = client.get("/static/style.css").get_data(as_text=True)
    assert "@media (prefers-color-scheme: dark)" in css and "--bg:" in css
    assert "@import" not in css and "url(" not in css


# login_required ------------------------------------------------------------------------

@pytest.fixture
def guarded(app: Flask) -> Flask:
    """Views behind each access level, as the dashboard and settings pages use them."""
    @app.route("/test-read")
    @login_required
    def read() -> str:
        return f"read {access.current_user()['email']} {access.current_site()['cname']}"

    @app.route("/test-admin")
    @login_required(access="a")
    def admin() -> str:
        return "admin"

    @app.route("/test-super")
    @login_required(access="*")
    def superuser() -> str:
        return "super"

    return app


@pytest.mark.parametrize(("level", "allowed"), [
    ("r", {"/test-read"}),
    ("s", {"/test-read"}),
    ("a", {"/test-read", "/test-admin"}),
    ("*", {"/test-read", "/test-admin", "/test-super"}),
])
def test_access_levels(guarded, level, allowed):
    site, _ = make_site(guarded, cname=HOST, email="token-owner@example.com")
    add_user(guarded, site["id"], EMAIL, access=level)
    client = guarded.test_client()
    for path in ("/test-read", "/test-admin", "/test-super"):
        assert client.get(path, headers={"Host": HOST}).status_code == 303
    sign_in(client)
    for path in ("/test-read", "/test-admin", "/test-super"):
        resp = client.get(path, headers={"Host": HOST})
        if path in allowed:
            assert resp.status_code == 200
        else:
            assert_page(resp, 403, "Your account may not view this page.")
    assert client.get("/test-read", headers={"Host": HOST}).get_data(as_text=True) == \
        f"read {EMAIL} {HOST}"


def test_unknown_access_level_is_a_programming_error():
    with pytest.raises(ValueError):
        login_required(access="x")


def test_visitor_counter_keeps_its_own_headers(app, client):
    make_site(app, cname=HOST, settings={"allow_counter": True})
    resp = client.get("/counter/TOTAL.html", headers={"Host": HOST})
    assert resp.status_code == 200
    # Other sites frame it: none of the pages' frame-ancestors 'none'.
    assert "frame-ancestors *" in resp.headers["Content-Security-Policy"]
    resp = client.get("/counter/TOTAL.nope", headers={"Host": HOST})
    assert resp.status_code == 400 and not resp.content_type.startswith("text/html")
    # The pages' session and layout stay out of it: a cache may keep one copy for all.
    resp = client.get("/counter/TOTAL.html", headers={"Host": HOST})
    assert "Cookie" not in resp.headers.get("Vary", "") and "Set-Cookie" not in resp.headers


# The settings pages --------------------------------------------------------------------

SETTINGS_BLUEPRINTS = ("settings", "user_prefs", "user_auth", "user_api", "settings_users",
                       "settings_sites", "settings_purge", "settings_export")


def settings_pages(app: Flask) -> list[str]:
    """Every GET route of the settings pages, with ids of things that exist."""
    values = {"user_id": "1", "site_id": "2", "export_id": "1", "token_id": "1",
              "upload_id": "1"}
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in SETTINGS_BLUEPRINTS and "GET" in (rule.methods or ()):
            path = rule.rule
            for name, value in values.items():
                path = path.replace(f"<int:{name}>", value)
            out.append(path)
    return sorted(out)


def test_settings_pages_are_pages(app, client, site):
    # A child site to see the removal page of, and an export to download.
    make_site(app, cname="child.example.com", parent=site["id"], email="c@example.com")
    sign_in(client)
    from tests.test_signin import csrf_of
    token = csrf_of(client.get("/user/pref", headers={"Host": HOST}).get_data(as_text=True))
    assert client.post("/settings/export", headers={"Host": HOST},
                       data={"csrf": token}).status_code == 303
    import io
    from pathlib import Path
    fixture = (Path(__file__).parent / "fixtures" / "export.csv").read_bytes()
    assert client.post("/settings/export/import", headers={"Host": HOST},
                       content_type="multipart/form-data",
                       data={"csrf": token, "csv": (io.BytesIO(fixture), "export.csv")}
                       ).status_code == 303
    paths = settings_pages(app)
    assert len(paths) >= 16, paths
    for path in paths:
        resp = client.get(path, headers={"Host": HOST})
        if path in ("/settings", "/user"):
            assert resp.status_code == 303, path
            continue
        if path in ("/settings/main/ip", "/settings/export/1"):
            assert resp.status_code == 200, path
            continue
        html = assert_page(resp, 200)
        assert resp.headers["Cache-Control"] == "no-store", path
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html and " style=" not in html, path
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path
        assert not re.search(r'(src|href)="(https?:)?//', html), path
        # Every form that changes something carries the token.
        for form in re.findall(r'<form[^>]*method="post"[^>]*>.*?</form>', html, re.S):
            assert 'name="csrf"' in form, (path, form[:200])
        # The tabs: the current one is marked, the site's are there for an admin.
        assert 'aria-current="page"' in html and 'href="/settings/users"' in html, path

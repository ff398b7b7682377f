"""GET /: the dashboard's numbers, filters, bad input and limits, through the Flask test
client (the browser tests drive the same page in Chromium)."""
from __future__ import annotations

import gzip
import html
import json
import re
import time
from pathlib import Path

import pytest

from goatcounter.storage import db
from tests import dashboard_data, sqlite_plans
from tests.conftest import make_site, query
from tests.dashboard_page import dashboard, figures, list_rows, page_rows, sections, signed_in

RATELIMIT = "api:none,api-count:none,export:none,count:none"
HOST = "stats.example.com"
MONTH = "period-start=2026-10-28&period-end=2026-11-26"
API_MONTH = "start=2026-10-28&end=2026-11-26T23:59:59Z"
STATIC = Path(__file__).resolve().parent.parent / "goatcounter" / "dashboard" / "static"


@pytest.fixture
def site(app):
    api, site = dashboard_data.setup(app)
    return api, site


def path_id(app, path: str) -> int:
    return query(app, "SELECT id FROM paths WHERE path = ?", (path,))[0][0]


# What the dashboard shows equals what the API answers ------------------------------

LIST_PAGES = {"w-toprefs": "toprefs", "w-browsers": "browsers", "w-systems": "systems",
              "w-locations": "locations", "w-sizes": "sizes", "w-campaigns": "campaigns"}
SIZE_NAMES = {"phone": "Phones", "tablet": "Tablets and large phones",
              "desktop": "Computer monitors", "desktophd": "Computer monitors larger than HD",
              "unknown": "(unknown)"}


def api_list(api, page: str, extra: str) -> list[tuple[str, int]]:
    got = api.get(f"/api/v0/stats/{page}?{API_MONTH}&limit=6{extra}").get_json()["stats"]
    out = []
    for item in got:
        name = SIZE_NAMES[item["id"]] if page == "sizes" else item["name"]
        out.append((name or ("(no referrer)" if page == "toprefs" else "(unknown)"),
                    item["count"]))
    return out


@pytest.mark.parametrize("how", ["everything", "filter text", "one path"])
def test_the_dashboard_shows_what_the_api_answers(app, site, how):
    api, _ = site
    dash, extra = "", ""
    if how == "filter text":
        dash, extra = "&filter=o", "&filter=o"
    elif how == "one path":
        dash, extra = "&path=/about", f"&include_paths={path_id(app, '/about')}"
    page = dashboard(signed_in(app, site), HOST, MONTH + dash)
    parts = sections(page)

    total = api.get(f"/api/v0/stats/total?{API_MONTH}{extra}").get_json()
    assert figures(parts["totals"])["Visits"] == total["total"]
    hits = api.get(f"/api/v0/stats/hits?{API_MONTH}&limit=10{extra}").get_json()["hits"]
    assert [(p, v) for p, v, _ in page_rows(parts["pages"])] == \
        [(h["path"], h["count"]) for h in hits]
    views = {r["path"]: r["pageviews"] for r in query(
        app, "SELECT p.path, count(*) AS pageviews FROM hits h JOIN paths p ON p.id = h.path_id"
        " GROUP BY p.path")}
    assert {p: pv for p, _, pv in page_rows(parts["pages"])} == {h["path"]: views[h["path"]]
                                                                for h in hits}
    for section, name in LIST_PAGES.items():
        assert list_rows(parts[section]) == api_list(api, name, extra), name
    if how == "everything":
        assert figures(parts["totals"])["Unique visitors"] == total["visitors"]


@pytest.mark.parametrize(("kind", "value", "section", "page"), [
    ("browser", "Chrome", "w-browsers", "browsers/Chrome"),
    ("system", "Linux", "w-systems", "systems/Linux"),
    ("location", "US", "w-locations", "locations/US"),
    ("size", "desktop", "w-sizes", "sizes/desktop"),
])
def test_a_filtered_list_shows_the_apis_detail(app, site, kind, value, section, page):
    api, _ = site
    parts = sections(dashboard(signed_in(app, site), HOST, f"{MONTH}&{kind}={value}"))
    got = api.get(f"/api/v0/stats/{page}?{API_MONTH}&limit=6").get_json()["stats"]
    assert list_rows(parts[section]) == [(s["name"], s["count"]) for s in got]


# Filters on what visits came with ---------------------------------------------------

def truth(app, where: str, args: tuple = ()) -> dict[str, int]:
    """Visits per path among the stored hits that match `where`."""
    rows = query(app, "SELECT p.path, sum(h.first_visit) FROM hits h JOIN paths p"
                      " ON p.id = h.path_id LEFT JOIN browsers b ON b.id = h.browser_id"
                      f" WHERE {where} GROUP BY p.path", args)
    return {r[0]: r[1] for r in rows if r[1]}


@pytest.mark.parametrize(("filters", "where"), [
    ("browser=Chrome", "b.name = 'Chrome'"),
    ("location=US", "substr(h.location, 1, 2) = 'US'"),
    ("browser=Chrome&location=US", "b.name = 'Chrome' AND substr(h.location, 1, 2) = 'US'"),
    ("browser=Firefox&size=tablet", "b.name = 'Firefox' AND h.width BETWEEN 601 AND 1000"),
    ("ref=news.example.org/item/1",
     "h.ref_id IN (SELECT id FROM refs WHERE ref = 'news.example.org/item/1')"),
    ("campaign=1&location=DE", "h.campaign_id = 1 AND h.location = 'DE'"),
])
def test_filters_narrow_the_pages_to_matching_visits(app, site, filters, where):
    page = dashboard(signed_in(app, site), HOST, f"{MONTH}&{filters}")
    parts = sections(page)
    shown = {p: v for p, v, _ in page_rows(parts["pages"])}
    assert shown == truth(app, where)
    assert figures(parts["totals"])["Visits"] == sum(shown.values())
    # Each filter has its chip, with a link that removes it.
    assert len(re.findall(r'<li class="chip"><span>[^<]*</span> <a href="/', page)) == \
        len(filters.split("&"))


def test_lists_under_another_dimension_come_from_the_raw_hits(app, site):
    parts = sections(dashboard(signed_in(app, site), HOST, f"{MONTH}&browser=Chrome"))
    rows = dict(list_rows(parts["w-locations"]))
    want = {r[0]: r[1] for r in query(
        app, "SELECT substr(h.location, 1, 2), count(*) FROM hits h JOIN browsers b"
             " ON b.id = h.browser_id WHERE b.name = 'Chrome' AND h.first_visit = 1 GROUP BY 1")}
    assert rows == {"United States": want["US"]}
    people = query(app, "SELECT count(DISTINCT h.session) FROM hits h JOIN browsers b"
                        " ON b.id = h.browser_id WHERE b.name = 'Chrome'"
                        " AND h.first_visit = 1")[0][0]
    assert figures(parts["totals"])["Unique visitors"] == people
    assert figures(parts["totals"])["Pageviews"] == query(
        app, "SELECT count(*) FROM hits h JOIN browsers b ON b.id = h.browser_id"
             " WHERE b.name = 'Chrome'")[0][0]


def test_over_the_raw_hit_limit_the_page_says_so(app_config, tmp_path):
    from goatcounter import create_app
    app = create_app({**app_config, "DASHBOARD_RAW_HITS": 50, "RATELIMIT": RATELIMIT})
    _, site = dashboard_data.setup(app)
    page = dashboard(signed_in(app, site), HOST, f"{MONTH}&browser=Chrome")
    parts = sections(page)
    assert "more than 50 pageviews" in parts["w-locations"]
    assert list_rows(parts["w-locations"]) == []
    # What the aggregates hold is still shown.
    assert page_rows(parts["pages"]) and figures(parts["totals"])["Visits"]
    assert figures(parts["totals"])["Pageviews"] is None
    assert "for the whole site" in parts["totals"]


def test_without_raw_hits_the_page_says_so(app):
    _, site = dashboard_data.setup(app, settings={"collect": 190})
    parts = sections(dashboard(signed_in(app, site), HOST, f"{MONTH}&browser=Chrome"))
    assert "doesn't keep every individual pageview" in html.unescape(parts["w-locations"])


def test_a_selected_path_shows_its_referrers(app, site):
    api, _ = site
    page = dashboard(signed_in(app, site), HOST, f"{MONTH}&path=/about")
    refs = re.search(r'<tr class="refs">(.*?)</tr>', page, re.S).group(1)
    got = api.get(f"/api/v0/stats/hits/{path_id(app, '/about')}?{API_MONTH}").get_json()["refs"]
    assert list_rows(refs) == [(r["name"] or "(no referrer)", r["count"]) for r in got]


def test_links_keep_the_period_and_filters(app, site):
    page = dashboard(signed_in(app, site), HOST, f"{MONTH}&browser=Chrome")
    back = re.search(r'class="move-back" href="([^"]+)"', page).group(1)
    assert back == "/?period-start=2026-09-28&amp;period-end=2026-10-27&amp;browser=Chrome"
    remove = re.search(r'<li class="chip"><span>Browser: Chrome</span> <a href="([^"]+)"',
                       page).group(1)
    assert remove == "/?period-start=2026-10-28&amp;period-end=2026-11-26"


def test_pixel_pageviews_in_the_spool_are_shown(app, site):
    client = signed_in(app, site)
    before = figures(sections(dashboard(client, HOST, MONTH))["totals"])["Pageviews"]
    # Keep the worker from counting the spool after the reply, as a busy one may.
    app.extensions["goatcounter_pending"].last = time.monotonic() + 3600
    resp = app.test_client().get("/count?p=/from-the-pixel&t=Pixel", headers={
        "Host": HOST, "User-Agent": dashboard_data.FIREFOX},
        environ_base={"REMOTE_ADDR": "8.8.8.8"})
    assert resp.status_code == 200
    page = dashboard(client, HOST, MONTH)
    assert figures(sections(page)["totals"])["Pageviews"] == before + 1
    assert "/from-the-pixel" in page


# Bad input --------------------------------------------------------------------------

@pytest.mark.parametrize(("query_text", "status", "says"), [
    ("period-start=2026-02-30", 400, "period-start must be a date"),
    ("period-start=yesterday", 400, "period-start must be a date"),
    ("period-end=2026-11-26T00:00", 400, "period-end must be a date"),
    ("period-start=2026-11-26&period-end=2026-11-01", 400, "before period-start"),
    ("period-start=1980-01-01&period-end=2026-11-26", 400, "longer than"),
    ("period=fortnight", 400, "unknown period"),
    ("group=minute", 400, "group must be hour or day"),
    ("pages=-1", 400, "pages must be"),
    ("colour=red", 400, "unknown parameter"),
    ("size=huge", 400, "unknown size class"),
    ("campaign=launch", 400, "campaign must be"),
    ("location=USA", 400, "two-letter country code"),
    ("language=English", 400, "ISO 639"),
    ("browser=", 400, "1 to 1000 characters"),
    ("browser=Netscape", 404, "no visits with browser"),
    ("location=ZZ", 404, "no visits with location"),
    ("ref=nowhere.example", 404, "no visits with ref"),
    ("campaign=999", 404, "no visits with campaign"),
    ("filter=no-such-thing", 404, "no path or title matches"),
    ("path=/nope", 404, "this site has no path"),
])
def test_bad_input_is_a_clear_page(app, site, query_text, status, says):
    page = dashboard(signed_in(app, site), HOST, query_text, status=status)
    assert says in page.replace("&#34;", '"').lower() or says in page
    assert "Traceback" not in page and 'class="widget' not in page
    assert 'href="/"' in page  # a way out


def test_upstreams_own_parameters_are_ignored(app, site):
    page = dashboard(signed_in(app, site), HOST, f"{MONTH}&hl-period=week&showrefs=3&hideui=1")
    assert figures(sections(page)["totals"])["Visits"]


def test_a_host_without_a_site_is_a_400(app, site):
    make_site(app, cname="other.example.com", email="other@example.com")
    resp = signed_in(app, site).get("/", headers={"Host": "nobody.example.com"})
    assert resp.status_code == 400
    assert "Traceback" not in resp.get_data(as_text=True)


def test_filters_never_reach_another_sites_numbers(app, site):
    other, _ = make_site(app, cname="other.example.com", email="other@example.com")
    # A path that only the other site has.
    with app.app_context():
        db.write(lambda c: c.execute(
            "INSERT INTO paths (site_id, path, title) VALUES (?, '/secret', 'Secret')",
            (other["id"],)))
    client = signed_in(app, site)
    dashboard(client, HOST, "path=/secret", status=404)
    dashboard(client, HOST, "filter=secret", status=404)


# The page itself --------------------------------------------------------------------

def test_the_page_needs_nothing_from_elsewhere(app, site):
    resp = signed_in(app, site).get(f"/?{MONTH}", headers={"Host": HOST})
    page = resp.get_data(as_text=True)
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("/", "#")) or (re.match(r"http://[^\"]+", attr) and \
            'class="visit"' in page), attr
    assert "style=" not in page and "<script>" not in page and " on" + "click" not in page
    sent = len(gzip.compress(resp.data)) + sum(
        len(gzip.compress(f.read_bytes())) for f in STATIC.iterdir())
    assert sent < 100_000


def test_what_visitors_typed_is_escaped(app):
    api, site = dashboard_data.setup(app)
    resp = api.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": "/<script>alert(1)</script>", "title": "<b>bold</b>",
         "ref": "https://evil.example/<img src=x>", "created_at": "2026-11-25T10:00:00Z"}]})
    assert resp.status_code == 202
    page = dashboard(signed_in(app, site), HOST, MONTH + "&pages=50")
    assert "<script>alert" not in page and "<b>bold</b>" not in page and "<img src=x>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_users_settings_shape_the_page(app, site):
    with app.app_context():
        settings = json.loads(query(app, "SELECT settings FROM users WHERE id = 1")[0][0])
        settings.update(number_format=44, date_format="2006-01-02", twenty_four_hours=True,
                        timezone="NL.Europe/Amsterdam",
                        widgets=[{"n": "browsers", "s": {"limit": 1}},
                                 {"n": "totalpages", "s": {}}])
        db.write(lambda c: c.execute("UPDATE users SET settings = ? WHERE id = 1",
                                     (json.dumps(settings),)))
    page = dashboard(signed_in(app, site), HOST, "period-start=2026-11-25&period-end=2026-11-25")
    parts = sections(page)
    assert list(parts) == ["w-browsers", "totals"]
    assert len(list_rows(parts["w-browsers"])) == 1
    assert "2026-11-25" in page and "Europe/Amsterdam" in page
    # Hours in the user's zone: 21:00 in Amsterdam is 20:00 UTC.
    at_20 = query(app, "SELECT sum(first_visit) FROM hits WHERE created_at >= ? AND"
                       " created_at < ?", (1795636800, 1795636800 + 3600))[0][0]
    assert f"<title>Wed 2026-11-25 21:00–21:59: {at_20} visits," in page


def test_hourly_and_daily_charts(app, site):
    client = signed_in(app, site)
    hourly = dashboard(client, HOST, MONTH + "&group=hour")
    daily = dashboard(client, HOST, MONTH + "&group=day")
    totals_h = sections(hourly)["totals"]
    totals_d = sections(daily)["totals"]
    assert totals_h.count('<g class="slot') == 30 * 24
    assert totals_d.count('<g class="slot') == 30
    assert figures(totals_h) == figures(totals_d)


@pytest.mark.sqlite_only("traces SQLite connections and reads SQLite's plans")
def test_dimension_queries_read_no_table_whole(app, site):
    """Under every kind of filter the page's statements find their rows by index: no
    scan of the hits or any per-path table."""
    statements = sqlite_plans.trace(app)
    client = signed_in(app, site)
    for filters in ("", "&filter=o", "&path=/about", "&browser=Chrome", "&ref=Google",
                    "&size=phone", "&location=US", "&campaign=1", "&browser=Chrome&location=US"):
        dashboard(client, HOST, MONTH + filters)
    assert sqlite_plans.read_scans(app, statements) == []


# Who may see it ---------------------------------------------------------------------

def test_signed_out_the_dashboard_sends_to_the_sign_in_form(app, site):
    resp = app.test_client().get(f"/?{MONTH}&browser=Chrome", headers={"Host": HOST})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/user/new")


def test_a_user_of_another_site_gets_403_and_no_numbers(app):
    # Cookies don't tell ports apart: two sites on one host name share the session.
    dashboard_data.setup(app, cname="127.0.0.1:5001")
    make_site(app, cname="127.0.0.1:5002", email="other@example.com")
    client = signed_in(app, {"cname": "127.0.0.1:5002"}, email="other@example.com")
    resp = client.get(f"/?{MONTH}", headers={"Host": "127.0.0.1:5001"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 403, page[:500]
    assert 'class="widget' not in page and "Traceback" not in page
    assert "another site" in page

"""GET / under each widget setting of UserSettings.widgets (upstream's table): the chart
styles, the totals without events and lined up with the pages, the list sizes, the
`key` that pins a list to one value's detail, and the note for data the site doesn't
collect; numbers compared with the stats API (or the stored hits where the API has no
such number)."""
from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from flask import Flask

from goatcounter.dashboard.formatting import Formats
from goatcounter.storage import db
from tests import dashboard_data, sqlite_plans
from tests.conftest import API, query
from tests.dashboard_page import dashboard, figures, list_rows, page_rows, sections, signed_in

HOST = "stats.example.com"
MONTH = "period-start=2026-10-28&period-end=2026-11-26"
API_MONTH = "start=2026-10-28&end=2026-11-26T23:59:59Z"
PREV_MONTH = "start=2026-09-28&end=2026-10-27T23:59:59Z"
# The hours of MONTH, in the hits' created_at.
MONTH_HOURS = (1793145600, 1795737600)


def set_widgets(app: Flask, widgets: list[dict[str, Any]], user_id: int = 1) -> None:
    """Store the user's widgets as the settings page (or PATCH /api/v0/me) would."""
    settings = json.loads(query(app, "SELECT settings FROM users WHERE id = ?",
                                (user_id,))[0][0])
    settings["widgets"] = widgets
    with app.app_context():
        db.write(lambda c: c.execute("UPDATE users SET settings = ? WHERE id = ?",
                                     (json.dumps(settings), user_id)))


def widget(name: str, **settings: Any) -> dict[str, Any]:
    return {"n": name, "s": settings}


def page_of(app: Flask, site: Any, widgets: list[dict[str, Any]], extra: str = "",
            status: int = 200) -> str:
    set_widgets(app, widgets)
    return dashboard(signed_in(app, site), HOST, MONTH + extra, status=status)


def slot_numbers(section: str) -> list[tuple[int, ...]]:
    """The numbers of each chart slot, from its title ("Wed 28 Oct ’26: 3 visits,
    5 pageviews"); slots in the future have none."""
    out = []
    for title in re.findall(r"<title>(.*?)</title>", section):
        text = html.unescape(title).rsplit(": ", 1)[1]
        if text != "in the future":
            out.append(tuple(int(re.sub(r"\D", "", n)) for n in text.split(", ")))
    return out


def changes(section: str) -> dict[str, str]:
    """The change against the previous period next to each figure of the totals."""
    found = re.findall(r'<dt>(.*?)</dt>\s*<dd><span class="figure-value">[^<]*</span>'
                       r'(?: <span class="change[^"]*"[^>]*>([^<]*)</span>)?', section)
    return {label: change for label, change in found}


@pytest.fixture
def site(app):
    return dashboard_data.setup(app)


def api_of(site: tuple[API, dict]) -> API:
    return site[0]


# Chart styles ------------------------------------------------------------------------

def chart_kinds(section: str) -> set[str]:
    return set(re.findall(r'<figure class="chart chart-(\w+)', section))


@pytest.mark.parametrize(("style", "drawn"), [("line", {"line"}), ("bar", {"bar"}),
                                               ("text", set()), ("Bar ", {"bar"}),
                                               ("sparkline", {"line"}), (None, {"line"})])
def test_pages_style_draws_lines_bars_or_a_table(app, site, style, drawn):
    page = page_of(app, site, [widget("pages", style=style), widget("totalpages")])
    pages = sections(page)["pages"]
    assert chart_kinds(pages) == drawn
    if "line" in drawn:
        assert '<path class="line s0" d="M0 ' in pages and '<path class="area s0"' in pages
        assert not re.search(r'<path class="s0" d="M[\d.]+ 100V', pages)  # no bars
    if "bar" in drawn:
        assert re.search(r'<path class="s0" d="M[\d.]+ 100V', pages)
        assert 'class="line' not in pages
    if not drawn:
        assert "<svg" not in pages and "pages-text" in pages
    # The rows are the API's, whatever the style.
    hits = api_of(site).get(f"/api/v0/stats/hits?{API_MONTH}&limit=10").get_json()["hits"]
    assert [(p, v) for p, v, _ in page_rows(pages)] == [(h["path"], h["count"]) for h in hits]


@pytest.mark.parametrize("style", ["line", "bar"])
def test_each_slot_of_a_page_row_has_the_apis_number(app, site, style):
    api = api_of(site)
    page = page_of(app, site, [widget("pages", style=style), widget("totalpages")])
    rows = re.findall(r'<tr class="page[^"]*">(.*?)</tr>', sections(page)["pages"], re.S)
    hits = api.get(f"/api/v0/stats/hits?{API_MONTH}&limit=10").get_json()["hits"]
    assert len(rows) == len(hits)
    for row, hit in zip(rows, hits, strict=True):
        # Periods over 8 days are drawn by day in the rows.
        assert slot_numbers(row) == [(d["daily"],) for d in hit["stats"]]
        # Every slot can take the keyboard focus (one tab stop per chart).
        assert row.count('tabindex="0"') == 1
        assert row.count('tabindex="-1"') == len(hit["stats"]) - 1


@pytest.mark.parametrize(("style", "drawn"), [("line", "line"), ("bar", "bar"),
                                               ("text", "line")])
def test_totals_style_draws_lines_or_bars(app, site, style, drawn):
    page = page_of(app, site, [widget("totalpages", style=style)])
    totals = sections(page)["totals"]
    assert chart_kinds(totals) == {drawn}
    total = api_of(site).get(f"/api/v0/stats/total?{API_MONTH}").get_json()
    # By hour: visits and pageviews, each slot with its numbers, but the hours after
    # NOW (26 Nov 12:00), which are in the future.
    numbers = slot_numbers(totals)
    assert len(numbers) == 30 * 24 - 11
    assert sum(v for v, _ in numbers) == total["total"]
    assert [v for v, _ in numbers] == [h for d in total["stats"] for h in d["hourly"]][:-11]
    if drawn == "line":
        assert totals.count('<path class="line ') == 2  # visits and pageviews
    # The screen readers' table has the same numbers.
    table = re.search(r"<tbody>(.*?)</tbody>", totals, re.S).group(1)
    assert table.count("<tr>") == 30 * 24 - 11


def test_a_line_stops_where_the_future_begins(app, site):
    set_widgets(app, [widget("totalpages", style="line")])
    # NOW is 26 Nov 12:00: the hours after it are shaded and have no line over them.
    page = dashboard(signed_in(app, site), HOST, "period-start=2026-11-26&period-end=2026-11-26")
    totals = sections(page)["totals"]
    assert '<path class="future" d="M13 0H24V100H13Z"/>' in totals
    lines = re.findall(r'<path class="line s\d" d="([^"]+)"', totals)
    assert len(lines) == 2 and all(d.endswith("H13") for d in lines)
    assert totals.count("in the future") == 11


# The totals without events -----------------------------------------------------------

EVENTS_AT = ["2026-11-20T10:05:00Z", "2026-11-21T11:05:00Z", "2026-11-22T12:05:00Z",
             "2026-11-23T13:05:00Z"]


def add_events(api: API) -> None:
    """Clicks counted as events in this period and the one before, some by visitors who
    saw pages, one by a visitor who did nothing else; and pageviews the period before."""
    hits: list[dict[str, Any]] = []
    for i, at in enumerate(EVENTS_AT):
        hits.append({"path": "signup-click", "title": "Sign up", "event": True,
                     "session": f"visitor-{i}", "user_agent": dashboard_data.CHROME,
                     "location": "US-TX", "size": "1366,768,1", "created_at": at})
    hits.append({"path": "newsletter", "event": True, "session": "clicker-only",
                 "user_agent": dashboard_data.FIREFOX, "location": "NL",
                 "created_at": "2026-11-24T09:00:00Z"})
    for i, day in enumerate(("2026-10-10", "2026-10-11", "2026-10-12")):
        hits.append({"path": "/", "title": "Home", "session": f"old-{i}",
                     "user_agent": dashboard_data.FIREFOX, "created_at": f"{day}T10:00:00Z"})
        hits.append({"path": "signup-click", "event": True, "session": f"old-{i}",
                     "user_agent": dashboard_data.FIREFOX, "created_at": f"{day}T10:01:00Z"})
    resp = api.post("/api/v0/count", {"hits": hits, "no_sessions": False})
    assert resp.status_code == 202, resp.get_data(as_text=True)


def pageviews_without_events(app: Flask, where: str = "TRUE") -> int:
    return query(app, "SELECT count(*) FROM hits h JOIN paths p ON p.id = h.path_id"
                      " LEFT JOIN browsers b ON b.id = h.browser_id WHERE p.event = 0"
                      f" AND h.created_at >= ? AND h.created_at < ? AND {where}",
                 MONTH_HOURS)[0][0]


def test_no_events_leaves_the_events_out_of_the_totals(app, site):
    api = api_of(site)
    add_events(api)
    total = api.get(f"/api/v0/stats/total?{API_MONTH}").get_json()
    before = api.get(f"/api/v0/stats/total?{PREV_MONTH}").get_json()
    assert total["total_events"] == 5 and before["total_events"] == 3

    page = page_of(app, site, [widget("pages"), widget("totalpages", **{"no-events": True}),
                               widget("toprefs")])
    parts = sections(page)
    totals = parts["totals"]
    visits = total["total"] - total["total_events"]
    fmt = Formats()
    assert f"<small>{fmt.number(visits)} visits; excluding events</small>" in totals
    assert figures(totals)["Visits"] == visits
    assert figures(totals)["Pageviews"] == pageviews_without_events(app)
    assert sum(v for v, _ in slot_numbers(totals)) == visits
    assert "excluding events" in re.search(r'aria-label="([^"]+)"', totals).group(1)
    # The change is against the previous period's visits without its events.
    assert changes(totals)["Visits"] == fmt.change(
        visits, before["total"] - before["total_events"])[0]
    # The visitor who only clicked isn't one; a raw-hit count over the period's days.
    people = query(app, "SELECT count(DISTINCT h.session) FROM hits h JOIN paths p"
                        " ON p.id = h.path_id WHERE p.event = 0 AND h.first_visit = 1"
                        " AND h.created_at >= ? AND h.created_at < ?", MONTH_HOURS)[0][0]
    assert figures(totals)["Unique visitors"] == people < total["visitors"]
    # The pages list events among its rows, so its heading counts them, as upstream's;
    # so do the referrers' shares.
    assert f"out of {fmt.number(total['total'])} visits shown" in parts["pages"]
    shares = re.findall(r'<span class="col-perc">([^<]*)</span>', parts["w-toprefs"])
    assert shares == [fmt.percent(n, total["total"]) for _, n in list_rows(parts["w-toprefs"])]

    # Without the setting the events are counted.
    page = page_of(app, site, [widget("pages"), widget("totalpages", **{"no-events": False})])
    totals = sections(page)["totals"]
    assert figures(totals)["Visits"] == total["total"]
    assert f"<small>{fmt.number(total['total'])} visits</small>" in totals
    assert changes(totals)["Visits"] == fmt.change(total["total"], before["total"])[0]
    assert figures(totals)["Unique visitors"] == total["visitors"]


@pytest.mark.parametrize(("filters", "api_filter", "where"), [
    ("&filter=s", "&filter=s", "(p.path LIKE '%s%' OR p.title LIKE '%s%')"),
    ("&browser=Chrome", None, "b.name = 'Chrome'"),
    ("&browser=Chrome&location=US", None, "b.name = 'Chrome' AND h.location LIKE 'US%'"),
])
def test_no_events_under_filters(app, site, filters, api_filter, where):
    api = api_of(site)
    add_events(api)
    page = page_of(app, site, [widget("totalpages", **{"no-events": True})], extra=filters)
    totals = sections(page)["totals"]
    truth = query(app, "SELECT coalesce(sum(h.first_visit), 0) FROM hits h JOIN paths p"
                       " ON p.id = h.path_id LEFT JOIN browsers b ON b.id = h.browser_id"
                       f" WHERE p.event = 0 AND h.created_at >= ? AND h.created_at < ?"
                       f" AND {where}", MONTH_HOURS)[0][0]
    assert figures(totals)["Visits"] == truth > 0
    if api_filter:
        total = api.get(f"/api/v0/stats/total?{API_MONTH}{api_filter}").get_json()
        assert truth == total["total"] - total["total_events"]
        assert figures(totals)["Pageviews"] == pageviews_without_events(app, where)
    assert sum(n[0] for n in slot_numbers(totals)) == truth


def test_no_events_on_a_site_without_events_changes_nothing(app, site):
    plain = sections(page_of(app, site, [widget("totalpages")]))["totals"]
    without = sections(page_of(app, site, [widget("totalpages", **{"no-events": True})]))
    assert figures(without["totals"]) == figures(plain)
    assert slot_numbers(without["totals"]) == slot_numbers(plain)


# Lining the totals up with the pages --------------------------------------------------

def test_align_puts_the_totals_chart_in_the_pages_columns(app, site):
    pages = re.search(r'<table class="pages pages-line">\s*(<colgroup>.*?</colgroup>)',
                      page_of(app, site, [widget("pages"), widget("totalpages")]), re.S)
    assert pages
    page = page_of(app, site, [widget("pages"), widget("totalpages", align=True)])
    totals = sections(page)["totals"]
    aligned = re.search(r'<table class="pages pages-align" role="presentation">\s*'
                        r'(<colgroup>.*?</colgroup>)\s*<tr><td></td><td></td><td></td>'
                        r'<td class="col-chart"><figure class="chart chart-line', totals, re.S)
    assert aligned and aligned.group(1) == pages.group(1)
    assert "pages-align" not in sections(page_of(app, site, [widget("totalpages")]))["totals"]


# List sizes ----------------------------------------------------------------------------

def test_limit_pages_and_show_more(app, site):
    api = api_of(site)
    page = page_of(app, site, [widget("pages", limit_pages=2), widget("totalpages")])
    pages = sections(page)["pages"]
    hits = api.get(f"/api/v0/stats/hits?{API_MONTH}&limit=4").get_json()["hits"]
    assert [p for p, _, _ in page_rows(pages)] == [h["path"] for h in hits[:2]]
    more = re.search(r'<a class="more" href="([^"]+)"', pages).group(1)
    assert html.unescape(more) == f"/?{MONTH}&pages=4"
    pages = sections(dashboard(signed_in(app, site), HOST, f"{MONTH}&pages=4"))["pages"]
    assert [p for p, _, _ in page_rows(pages)] == [h["path"] for h in hits]


@pytest.mark.parametrize(("name", "section", "page"), [
    ("toprefs", "w-toprefs", "toprefs"), ("browsers", "w-browsers", "browsers"),
    ("systems", "w-systems", "systems"), ("locations", "w-locations", "locations"),
    ("campaigns", "w-campaigns", "campaigns")])
@pytest.mark.parametrize("limit", [1, 2, 20])
def test_limit_of_each_list(app, site, name, section, page, limit):
    api = api_of(site)
    parts = sections(page_of(app, site, [widget(name, limit=limit)]))
    got = api.get(f"/api/v0/stats/{page}?{API_MONTH}&limit={limit}").get_json()
    want = [(s["name"] or ("(no referrer)" if page == "toprefs" else "(unknown)"), s["count"])
            for s in got["stats"]]
    assert list_rows(parts[section]) == want
    assert ('class="more"' in parts[section]) == got["more"]


def test_languages_limit(app):
    api, site = dashboard_data.setup(app, settings={"collect": 446 | 64})
    # Languages are collected once the site asks for them: count some more.
    resp = api.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": "/", "language": lang, "created_at": "2026-11-20T10:00:00Z"}
        for lang in ("deu", "deu", "nld", "eng")]})
    assert resp.status_code == 202
    parts = sections(page_of(app, (api, site), [widget("languages", limit=1)]))
    got = api.get(f"/api/v0/stats/languages?{API_MONTH}&limit=1").get_json()
    assert list_rows(parts["w-languages"]) == [(s["name"], s["count"]) for s in got["stats"]]
    assert len(got["stats"]) == 1 and got["more"]


def test_limit_refs_of_a_selected_path(app, site):
    api = api_of(site)
    page = page_of(app, site, [widget("pages", limit_refs=1), widget("totalpages")],
                   extra="&path=/about")
    refs = re.search(r'<tr class="refs">(.*?)</tr>', page, re.S).group(1)
    about = query(app, "SELECT id FROM paths WHERE path = '/about'")[0][0]
    got = api.get(f"/api/v0/stats/hits/{about}?{API_MONTH}&limit=1").get_json()
    assert list_rows(refs) == [(r["name"] or "(no referrer)", r["count"]) for r in got["refs"]]
    assert got["more"]
    more = re.search(r'<a class="more" href="([^"]+)"', refs).group(1)
    everything = dashboard(signed_in(app, site), HOST, html.unescape(more)[2:])
    refs = re.search(r'<tr class="refs">(.*?)</tr>', everything, re.S).group(1)
    got = api.get(f"/api/v0/stats/hits/{about}?{API_MONTH}&limit=50").get_json()
    assert list_rows(refs) == [(r["name"] or "(no referrer)", r["count"]) for r in got["refs"]]


@pytest.mark.parametrize(("settings", "rows"), [
    ({"limit": 0}, 6), ({"limit": -3}, 6), ({"limit": 2.0}, 2), ({"limit": "1"}, 1),
    ({"limit": "many"}, 6), ({"limit": 500}, 20), ({"limit": True}, 6)])
def test_stored_numbers_are_read_leniently(app, site, settings, rows):
    api = api_of(site)
    # More referrers than any limit.
    resp = api.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": f"/p{i}", "ref": f"https://site{i}.example/",
         "created_at": "2026-11-20T10:00:00Z"}
        for i in range(25)]})
    assert resp.status_code == 202
    parts = sections(page_of(app, site, [widget("toprefs", **settings)]))
    got = api.get(f"/api/v0/stats/toprefs?{API_MONTH}&limit=50").get_json()["stats"]
    assert len(got) > 20
    assert len(list_rows(parts["w-toprefs"])) == rows


# A list pinned to one value (`key`) ---------------------------------------------------

@pytest.mark.parametrize(("name", "key", "section", "detail", "heading"), [
    ("locations", "US", "w-locations", "locations/US", "Locations for United States"),
    ("locations", "us", "w-locations", "locations/US", "Locations for United States"),
    ("sizes", "desktop", "w-sizes", "sizes/desktop", "Widths of Computer monitors"),
    ("campaigns", "1", "w-campaigns", "campaigns/1", "Sources of launch"),
    ("campaigns", 1, "w-campaigns", "campaigns/1", "Sources of launch"),
    ("browsers", "Chrome", "w-browsers", "browsers/Chrome", "Chrome versions"),
    ("systems", "Linux", "w-systems", "systems/Linux", "Linux versions"),
    ("toprefs", "news.example.org/item/1", "w-toprefs", "toprefs/news.example.org/item/1",
     "Visits from news.example.org/item/1"),
])
def test_key_shows_that_values_detail(app, site, name, key, section, detail, heading):
    api = api_of(site)
    part = sections(page_of(app, site, [widget(name, key=key, limit=6)]))[section]
    got = api.get(f"/api/v0/stats/{detail}?{API_MONTH}&limit=6").get_json()["stats"]
    assert got
    assert list_rows(part) == [(s["name"], s["count"]) for s in got]
    assert html.unescape(re.search(r"<h2[^>]*>(.*?)</h2>", part, re.S).group(1)).strip() \
        == heading
    # The detail's rows aren't filters (a version or a region is no value to filter on).
    assert 'class="name" href' not in part


@pytest.mark.parametrize(("name", "key"), [
    ("locations", "USA"), ("locations", "1"), ("sizes", "huge"), ("sizes", "unknown"),
    ("campaigns", "launch"), ("campaigns", "-1"), ("browsers", ""), ("browsers", None),
    ("languages", "deu")])
def test_a_key_that_names_nothing_it_can_show_is_ignored(app, site, name, key):
    plain = sections(page_of(app, site, [widget(name)]))[f"w-{name}"]
    keyed = sections(page_of(app, site, [widget(name, key=key)]))[f"w-{name}"]
    assert keyed == plain


def test_key_under_another_filter_counts_the_raw_hits(app, site):
    part = sections(page_of(app, site, [widget("locations", key="US")],
                            extra="&browser=Chrome"))["w-locations"]
    rows = query(app, "SELECT h.location, count(*) FROM hits h JOIN browsers b"
                      " ON b.id = h.browser_id WHERE b.name = 'Chrome' AND h.first_visit = 1"
                      " AND h.location LIKE 'US-%' GROUP BY 1")
    names = {"US-TX": "Texas", "US-CA": "California"}
    assert sorted(list_rows(part)) == sorted((names[r[0]], r[1]) for r in rows)
    # A browser pinned to Chrome under a location filter: Chrome's versions only.
    part = sections(page_of(app, site, [widget("browsers", key="Chrome")],
                            extra="&location=US"))["w-browsers"]
    chrome = query(app, "SELECT count(*) FROM hits h JOIN browsers b ON b.id = h.browser_id"
                        " WHERE b.name = 'Chrome' AND h.first_visit = 1"
                        " AND h.location LIKE 'US%'")[0][0]
    assert list_rows(part) == [("Chrome 131", chrome)]


def test_own_filter_wins_over_the_key(app, site):
    part = sections(page_of(app, site, [widget("locations", key="US")],
                            extra="&location=DE"))["w-locations"]
    assert "Regions of Germany" in part and "United States" not in part


# Data the site doesn't collect -------------------------------------------------------

NOT_COLLECTED = "Collecting this information is currently"


@pytest.mark.parametrize(("flag", "off"), [
    (2, {"w-toprefs", "w-campaigns"}), (4, {"w-browsers", "w-systems"}), (8, {"w-sizes"}),
    (16, {"w-locations"}), (64, {"w-languages"})])
def test_a_widget_says_when_its_data_isnt_collected(app, flag, off):
    collect = (446 | 64) & ~flag
    _, site = dashboard_data.setup(app, settings={"collect": collect})
    set_widgets(app, [widget(n) for n in ("toprefs", "campaigns", "browsers", "systems",
                                          "sizes", "locations", "languages")])
    parts = sections(dashboard(signed_in(app, site), HOST, MONTH))
    said = {name for name, part in parts.items() if NOT_COLLECTED in part}
    assert said == off
    for name in off:
        note = re.search(r'<p class="note note-collect">(.*?)</p>', parts[name], re.S).group(1)
        assert " ".join(note.split()) == f'{NOT_COLLECTED} <a href="{SETTINGS}">disabled in' \
            " settings</a>."


SETTINGS = "/settings/main#section-collect"


def test_the_note_links_to_the_site_settings(app):
    api, site = dashboard_data.setup(app, settings={"collect": 446 & ~2})
    set_widgets(app, [widget("toprefs"), widget("browsers")])
    parts = sections(dashboard(signed_in(app, site), HOST, MONTH))
    assert '<a href="/settings/main#section-collect">disabled in settings</a>' \
        in parts["w-toprefs"]
    assert NOT_COLLECTED not in parts["w-browsers"]
    # What was counted before collecting stopped is still shown under the note.
    got = api.get(f"/api/v0/stats/toprefs?{API_MONTH}&limit=6").get_json()["stats"]
    assert list_rows(parts["w-toprefs"]) == [(s["name"] or "(no referrer)", s["count"])
                                             for s in got]


def test_a_public_viewer_gets_no_settings_link(app):
    dashboard_data.setup(app, settings={"collect": 446 & ~2, "public": "public"})
    page = dashboard(app.test_client(), HOST, MONTH)
    assert NOT_COLLECTED in page and "/settings/main" not in page


def test_a_read_only_user_gets_no_settings_link(app):
    # The site settings page needs access "s": the note names the setting, links nowhere.
    _, site = dashboard_data.setup(app, settings={"collect": 446 & ~2})
    with app.app_context():
        db.write(lambda c: c.execute("""UPDATE users SET access = '{"all":"r"}'"""))
    part = sections(dashboard(signed_in(app, site), HOST, MONTH))["w-toprefs"]
    assert NOT_COLLECTED in part and "/settings/main" not in part
    assert "disabled in settings." in " ".join(part.split())


# Query plans ---------------------------------------------------------------------------

@pytest.mark.sqlite_only("traces SQLite connections and reads SQLite's plans")
def test_the_settings_read_no_table_whole(app, site):
    """With every setting on, under each kind of filter, the page's statements find their
    rows by index."""
    add_events(api_of(site))
    set_widgets(app, [widget("pages", style="bar", limit_pages=3, limit_refs=2),
                      widget("totalpages", align=True, style="bar", **{"no-events": True}),
                      widget("toprefs", key="news.example.org/item/1"),
                      widget("campaigns", key="1"), widget("browsers", key="Chrome"),
                      widget("systems", key="Linux"), widget("sizes", key="phone"),
                      widget("locations", key="US", limit=3), widget("languages", limit=2)])
    statements = sqlite_plans.trace(app)
    client = signed_in(app, site)
    for filters in ("", "&filter=o", "&path=/about", "&browser=Chrome", "&ref=Google",
                    "&location=US", "&browser=Chrome&location=US"):
        dashboard(client, HOST, MONTH + filters)
    assert sqlite_plans.read_scans(app, statements) == []

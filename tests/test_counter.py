"""The visitor counter, GET /counter/{path}.{json,html,svg,png}, against numbers counted here."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from goatcounter import clock
from tests import engines
from tests.conftest import API, NO_LIMITS, make_site

RATELIMIT = NO_LIMITS
HOST = "stats.example.com"
# 2026-11-20 12:00 UTC
T0 = 1795176000
NNBSP = "\u202f"


@pytest.fixture
def counted(app, api):
    """A site with the counter on: /about has 3 visitors (one on Nov 10), /contact 1,
    and an event `signup` 2."""
    clock.freeze(T0)
    sid = make_site_id(api)
    hits = [{"path": "/about", "session": "a", "created_at": "2026-11-20T10:00:00Z"},
            {"path": "/about", "session": "a", "created_at": "2026-11-20T10:05:00Z"},
            {"path": "/about", "session": "b", "created_at": "2026-11-19T10:00:00Z"},
            {"path": "/about", "session": "c", "created_at": "2026-11-10T10:00:00Z"},
            {"path": "/contact", "session": "a", "created_at": "2026-11-20T10:06:00Z"},
            {"path": "signup", "event": True, "session": "d",
             "created_at": "2026-11-20T11:00:00Z"},
            {"path": "signup", "event": True, "session": "e",
             "created_at": "2026-11-20T11:00:00Z"}]
    assert api.post("/api/v0/count", {"hits": hits}).status_code == 202
    allow(api, sid, True)
    return sid


def make_site_id(api) -> int:
    return api.get("/api/v0/sites").json["sites"][0]["id"]


def allow(api, site_id: int, on: bool) -> None:
    resp = api.patch(f"/api/v0/sites/{site_id}", {"settings": {"allow_counter": on}})
    assert resp.status_code == 200, resp.json


def get(client, url: str):
    return client.get(url, headers={"Host": HOST})


@pytest.mark.parametrize(("url", "count"), [
    ("/counter/%2Fabout.json", "3"),
    ("/counter//about.json", "3"),
    ("/counter/about.json", "3"),           # without the leading slash
    ("/counter/%2FABOUT.json", "3"),        # paths ignore case, as everywhere
    ("/counter/%2Fcontact.json", "1"),
    ("/counter/signup.json", "2"),          # an event, as sent (no slash)
    ("/counter/TOTAL.json", "6"),
    ("/counter/%2Fabout.json?start=2026-11-15", "2"),
    ("/counter/%2Fabout.json?start=2026-11-19&end=2026-11-19", "1"),
    ("/counter/%2Fabout.json?end=2026-11-10", "1"),
    ("/counter/%2Fabout.json?start=week", "2"),
    ("/counter/%2Fabout.json?start=month", "3"),
    ("/counter/TOTAL.json?start=2026-11-20", "4"),
])
def test_json_counts(client, counted, url, count):
    resp = get(client, url)
    assert resp.status_code == 200
    assert resp.json == {"count": count, "count_unique": count}
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Cache-Control"] == "public, max-age=1800"
    assert resp.headers["Expires"] == "Fri, 20 Nov 2026 12:30:00 GMT"


def number_format(app, site_id: int, code: int) -> None:
    engines.set_json(app, "sites", "user_defaults", "number_format", code, site_id)


def test_numbers_in_the_sites_number_format(app, client, api, counted):
    hits = [{"path": "/big", "session": f"s{i}", "created_at": "2026-11-20T10:00:00Z"}
            for i in range(1234)]
    for start in range(0, len(hits), 500):
        assert api.post("/api/v0/count", {"hits": hits[start:start + 500]}).status_code == 202
    assert get(client, "/counter/%2Fbig.json").json["count"] == f"1{NNBSP}234"
    number_format(app, counted, 44)
    assert get(client, "/counter/%2Fbig.json").json["count"] == "1,234"
    number_format(app, counted, 1)
    assert get(client, "/counter/%2Fbig.json").json["count"] == "1234"


def test_html(client, counted):
    resp = get(client, "/counter/%2Fabout.html")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    text = resp.get_data(as_text=True)
    assert "Views for this page:" in text and ">3<" in text and "stats by GoatCounter" in text
    assert "height: 80px" in text
    bare = get(client, "/counter/TOTAL.html?no_branding=1").get_data(as_text=True)
    assert "Views for this site:" in bare and ">6<" in bare
    assert "stats by GoatCounter" not in bare and "height: 60px" in bare


def test_svg(client, counted):
    resp = get(client, "/counter/%2Fabout.svg?style=%23gcvc-views%7Bfill%3Ared%7D")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/svg+xml"
    root = ET.fromstring(resp.data)
    assert (root.get("width"), root.get("height")) == ("200", "80")
    texts = {el.get("id"): el.text for el in root.iter("{http://www.w3.org/2000/svg}text")}
    assert texts == {"gcvc-for": "Views for this page:", "gcvc-views": "3",
                     "gcvc-by": "stats by GoatCounter"}
    assert "#gcvc-views{fill:red}" in root.find("{http://www.w3.org/2000/svg}style").text
    bare = ET.fromstring(get(client, "/counter/%2Fabout.svg?no_branding=1").data)
    assert bare.get("height") == "60"


def test_png(client, counted):
    resp = get(client, "/counter/%2Fabout.png")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(resp.data))
    assert image.size == (200, 80)
    assert image.getpixel((0, 40)) == (0x9A, 0x15, 0xA4)  # the border
    bare = Image.open(io.BytesIO(get(client, "/counter/%2Fabout.png?no_branding=1").data))
    assert bare.size == (200, 60)
    # The number is drawn in: another count gives another picture.
    other = get(client, "/counter/%2Fcontact.png").data
    assert other != resp.data


@pytest.mark.parametrize("ext", ["html", "svg"])
def test_style_cannot_leave_its_element(client, counted, ext):
    evil = "%3C%2Fstyle%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    resp = get(client, f"/counter/%2Fabout.{ext}?style={evil}")
    text = resp.get_data(as_text=True)
    assert "<script" not in text and text.count("</style") == 1
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    if ext == "svg":
        ET.fromstring(resp.data)  # still well-formed XML


def test_style_too_long(client, counted):
    resp = get(client, "/counter/%2Fabout.html?style=" + "a" * 3000)
    assert resp.status_code == 400


def test_off_unless_allowed(client, api, counted):
    allow(api, counted, False)
    resp = get(client, "/counter/%2Fabout.json")
    assert resp.status_code == 403
    assert resp.json == {"error": "Need to enable the ‘allow using the visitor counter’ setting"}
    html = get(client, "/counter/%2Fabout.svg")
    assert html.status_code == 403
    assert "allow using the visitor counter" in html.get_data(as_text=True)


def test_path_never_counted(client, counted):
    resp = get(client, "/counter/%2Fnever.json")
    assert resp.status_code == 404
    assert resp.json == {"count": "0", "count_unique": "0"}
    assert get(client, "/counter/%2Fnever.svg").status_code == 404


@pytest.mark.parametrize(("url", "message"), [
    ("/counter/%2Fabout.gif", 'unknown extension: "gif"'),
    ("/counter/%2Fabout", 'unknown extension: ""'),
    ("/counter/%2Fabout.json?start=2026-13-01", 'start: not a date in the form YYYY-MM-DD: '
                                                 '"2026-13-01"'),
    ("/counter/%2Fabout.json?end=yesterday", 'end: not a date in the form YYYY-MM-DD: '
                                             '"yesterday"'),
])
def test_bad_requests(client, counted, url, message):
    resp = get(client, url)
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert message in (json.loads(body)["error"] if url.split("?")[0].endswith(".json")
                       else body)


def test_another_site_counts_nothing_here(app, client, counted):
    other, token = make_site(app, cname="other.example.com")
    resp = client.get("/counter/%2Fabout.json", headers={"Host": "other.example.com"})
    assert resp.status_code == 403  # its own setting, not the first site's
    allow(API(client, token, "other.example.com"), other["id"], True)
    # /about was counted on the first site only.
    resp = client.get("/counter/%2Fabout.json", headers={"Host": "other.example.com"})
    assert (resp.status_code, resp.json["count"]) == (404, "0")
    resp = client.get("/counter/TOTAL.json", headers={"Host": "other.example.com"})
    assert (resp.status_code, resp.json["count"]) == (200, "0")

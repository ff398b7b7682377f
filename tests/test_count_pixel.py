"""The public /count endpoint (spec section 14)."""
from __future__ import annotations

import pytest

from goatcounter import clock
from goatcounter.public.pixel import GIF
from tests.conftest import make_site, query

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
VISITOR = "81.2.69.160"


@pytest.fixture
def site(app):
    site, _ = make_site(app, settings={"ignore_ips": "203.0.113.9"})
    return site


@pytest.fixture
def pixel(client, site):
    def get(query: str = "", method: str = "GET", headers: dict | None = None,
            ip: str = VISITOR):
        h = {"Host": site["cname"], "User-Agent": UA}
        h.update(headers or {})
        return client.open("/count" + ("?" + query if query else ""), method=method, headers=h,
                           environ_base={"REMOTE_ADDR": ip})
    return get


def rows(app, sql: str) -> list[tuple]:
    return [tuple(r) for r in query(app, sql)]


def hits(app) -> list[tuple]:
    return rows(app, "SELECT p.path, p.title, p.event, r.ref, r.ref_scheme, h.width, h.location,"
                     " h.first_visit FROM hits h JOIN paths p ON p.id = h.path_id"
                     " JOIN refs r ON r.id = h.ref_id ORDER BY h.id")


def test_counts_a_pageview(app, pixel):
    resp = pixel("p=/hello&t=Hello%20world&r=https%3A%2F%2Fexample.com%2Fx%3Fa%3D1&s=1920"
                 "&b=0&rnd=abcde")
    assert resp.status_code == 200
    assert resp.get_data() == GIF
    assert len(GIF) == 43
    assert hits(app) == [("/hello", "Hello world", 0, "example.com/x", "h", 1920, "GB", 1)]


def test_reply_headers(pixel):
    h = pixel("p=/x").headers
    assert h["Content-Type"] == "image/gif"
    assert h["Access-Control-Allow-Origin"] == "*"
    assert h["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert h["Cache-Control"] == "no-store,no-cache"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "deny"
    assert "Content-Security-Policy" not in h


def test_post_reads_the_query_string_and_ignores_the_body(app, pixel, client, site):
    resp = client.post("/count?p=/beacon&e=true", data=b"p=/body-path",
                       headers={"Host": site["cname"], "User-Agent": UA,
                                "Content-Type": "text/plain"},
                       environ_base={"REMOTE_ADDR": VISITOR})
    assert resp.status_code == 200
    assert [h[:3] for h in hits(app)] == [("beacon", "", 1)]


@pytest.mark.parametrize("headers", [{"X-Moz": "prefetch"}, {"Purpose": "prefetch"},
                                     {"X-Purpose": "preview"}])
def test_prefetch_is_not_counted(app, pixel, headers):
    resp = pixel("p=/x", headers=headers)
    assert resp.status_code == 200
    assert resp.get_data() == GIF
    assert hits(app) == []


def test_ignored_ip(app, pixel):
    resp = pixel("p=/x", ip="203.0.113.9")
    assert resp.status_code == 202
    assert resp.headers["X-Goatcounter"] == 'ignored because "203.0.113.9" is in the IP ignore list'
    assert hits(app) == []


@pytest.mark.parametrize(("query", "start"), [
    ("p=/x&e=maybe", "error decoding parameters: "),
    ("p=/x&s=xxx", "error decoding parameters: "),
    ("p=/x&b=yes", "error decoding parameters: "),
    ("p=/x&b=5", "wrong value: b=5"),
    ("p=/x&b=149", "wrong value: b=149"),
    ("", "not valid: path: must be set, must be longer than 1 characters."),
    ("p=/x&t=" + "t" * 1025, "not valid: title: must be shorter than 1024 characters."),
    ("p=/x&r=%FF", "not valid: ref: must be UTF-8."),
])
def test_refused(app, pixel, query, start):
    resp = pixel(query)
    assert resp.status_code == 400
    assert resp.get_data() == GIF
    assert resp.headers["X-Goatcounter"].startswith(start)
    assert hits(app) == []


def test_path_length_limit(app, pixel):
    assert pixel("p=/" + "a" * 2047).status_code == 200
    resp = pixel("p=/" + "a" * 2048)
    assert resp.status_code == 400
    assert resp.headers["X-Goatcounter"] == \
        f"ignored because path is longer than 2048 bytes ({len('/count?p=/') + 2048} bytes)"
    assert len(hits(app)) == 1


@pytest.mark.parametrize("raw", ["p=/caf\xe9", "p=/x&t=\xff\xfe", "p=/\xe2\x82"])
def test_raw_bytes_that_are_no_utf8_are_refused(app, client, site, raw):
    """Bytes a client sends without %-escaping them reach the query as they are (WSGI
    reads them as latin-1): invalid UTF-8 is a 400, as an escaped one is, not a crash."""
    resp = client.get("/count", headers={"Host": site["cname"], "User-Agent": UA},
                      environ_overrides={"QUERY_STRING": raw, "REMOTE_ADDR": VISITOR})
    assert resp.status_code == 400
    assert "must be UTF-8" in resp.headers["X-Goatcounter"]
    assert hits(app) == []


def test_raw_utf8_in_the_query_is_read_as_utf8(app, client, site):
    raw = "/café".encode().decode("latin-1")
    resp = client.get("/count", headers={"Host": site["cname"], "User-Agent": UA},
                      environ_overrides={"QUERY_STRING": "p=" + raw, "REMOTE_ADDR": VISITOR})
    assert resp.status_code == 200
    assert hits(app)[0][0] == "/café"


@pytest.mark.parametrize(("query", "ua"), [
    ("p=/x&b=150", UA), ("p=/x&b=153", UA), ("p=/x", "curl/8.5.0"), ("p=/x", ""),
    ("p=/x", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
])
def test_bots_get_200_and_are_only_logged(app, pixel, query, ua):
    resp = pixel(query, headers={"User-Agent": ua})
    assert resp.status_code == 200
    assert hits(app) == []
    assert rows(app, "SELECT path FROM bots") == [("/x",)]


def test_negative_b_is_accepted(app, pixel):
    assert pixel("p=/x&b=-1").status_code == 200
    assert len(hits(app)) == 1


def test_unknown_parameters_are_ignored(app, pixel):
    assert pixel("p=/x&whatever=1&rnd=x").status_code == 200
    assert len(hits(app)) == 1


def test_campaign_from_q(app, pixel):
    pixel("p=/landing&q=%3Futm_source%3Dnewsletter%26utm_campaign%3Dspring")
    assert hits(app)[0][3:5] == ("newsletter", "c")
    assert rows(app, "SELECT name FROM campaigns") == [("spring",)]


def test_google_referrer_is_grouped(app, pixel):
    pixel("p=/x&r=https%3A%2F%2Fwww.google.com%2Fsearch%3Fq%3Dx")
    assert hits(app)[0][3:5] == ("Google", "g")


def test_sessions_from_user_agent_and_ip(app, pixel):
    pixel("p=/a")
    pixel("p=/a")
    pixel("p=/a", ip="8.8.8.8")
    pixel("p=/a&ns=1")
    assert [h[7] for h in hits(app)] == [1, 0, 1, 1]


def test_language_needs_collect_bit(app, client):
    _site, _ = make_site(app, cname="lang.example.com", email="l@example.com",
                        settings={"collect": 446 | 64})
    client.get("/count?p=/x", headers={"Host": "lang.example.com", "User-Agent": UA,
                                       "Accept-Language": "fr-FR,fr;q=0.9"},
               environ_base={"REMOTE_ADDR": VISITOR})
    assert rows(app, "SELECT language FROM hits") == [("fra",)]


def test_collect_flags_turn_fields_off(app, client):
    make_site(app, cname="min.example.com", email="m@example.com", settings={"collect": 2})
    client.get("/count?p=/x&s=1920&r=https%3A%2F%2Fexample.com", headers={
        "Host": "min.example.com", "User-Agent": UA}, environ_base={"REMOTE_ADDR": VISITOR})
    # Without bit 256 no hit rows are kept, but the hit is still counted.
    assert rows(app, "SELECT count(*) FROM hits") == [(0,)]
    assert rows(app, "SELECT sum(pageviews) FROM site_counts") == [(1,)]
    assert rows(app, "SELECT width FROM size_days") == [(0,)]
    assert rows(app, "SELECT location FROM location_days") == [("",)]


def test_unknown_host_with_several_sites_is_json(app, client, site):
    make_site(app, cname="two.example.com", email="t@example.com")
    resp = client.get("/count?p=/x", headers={"Host": "nope.example.com", "User-Agent": UA})
    assert resp.status_code == 400
    assert resp.get_json() == {"error": 'no site at this domain ("nope.example.com")'}


def test_rate_limit_per_ip_and_user_agent(app_config, tmp_path):
    from goatcounter import create_app
    app_config["RATELIMIT"] = "count:2/10"
    app = create_app(app_config)
    site, _ = make_site(app)
    client = app.test_client(use_cookies=False)
    clock.freeze(1_800_000_000.0)

    def get(ip: str, ua: str = UA):
        return client.get("/count?p=/x", headers={"Host": site["cname"], "User-Agent": ua},
                          environ_base={"REMOTE_ADDR": ip})

    assert [get("8.8.8.8").status_code for _ in range(3)] == [200, 200, 429]
    assert get("8.8.8.8", "Other/1.0 (X11)").status_code == 200
    assert get("8.8.4.4").status_code == 200
    # The server itself is not limited, as upstream.
    assert [get("127.0.0.1").status_code for _ in range(4)] == [200] * 4

"""GET /api/v0/paths (spec 10.7, 11.4): the site's paths by id, paged with limit/after.
The replies equal to GoatCounter 2.7.0's are checked in test_stats.py (06, 07, 08, 19, 99)."""
from __future__ import annotations

import datetime as dt

import pytest

from goatcounter import clock
from goatcounter.accounts import tokens
from tests.conftest import API, assert_error, make_site


@pytest.fixture
def api(app, client) -> API:
    site, token = make_site(app)
    api = API(client, token, site["cname"])
    clock.freeze(dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    # Created in this order, so that id order and path order differ.
    hits = [{"path": p, "title": f"Title {p}", "session": "s", "event": p.startswith("e")}
            for p in ["/b", "/a", "/c", "e-click", "/a/b", "/d"]]
    assert api.post("/api/v0/count", {"hits": hits}).status_code == 202
    return api


def ids(body: dict) -> list[int]:
    return [p["id"] for p in body["paths"]]


def test_every_path_by_id(api):
    body = api.get("/api/v0/paths").get_json()
    assert body == {"paths": [
        {"id": 1, "path": "/b", "title": "Title /b", "event": False},
        {"id": 2, "path": "/a", "title": "Title /a", "event": False},
        {"id": 3, "path": "/c", "title": "Title /c", "event": False},
        {"id": 4, "path": "e-click", "title": "Title e-click", "event": True},
        {"id": 5, "path": "/a/b", "title": "Title /a/b", "event": False},
        {"id": 6, "path": "/d", "title": "Title /d", "event": False}], "more": False}


@pytest.mark.parametrize("names", [("limit", "after"), ("Limit", "After"), ("LIMIT", "aFTER")])
def test_paging(api, names):
    # goatcounter-mcp-server sends Limit/After (the names upstream's spec shows).
    limit, after = names
    first = api.get(f"/api/v0/paths?{limit}=4").get_json()
    assert ids(first) == [1, 2, 3, 4] and first["more"] is True
    second = api.get(f"/api/v0/paths?{limit}=4&{after}=4").get_json()
    assert ids(second) == [5, 6] and second["more"] is False
    exact = api.get(f"/api/v0/paths?{limit}=2&{after}=4").get_json()
    assert ids(exact) == [5, 6] and exact["more"] is False
    assert api.get(f"/api/v0/paths?{after}=6").get_json() == {"paths": [], "more": False}


@pytest.mark.parametrize(("limit", "want"), [("0", 1), ("-1", 1), ("1", 1), ("500", 6)])
def test_limit_is_clamped(api, limit, want):
    assert len(api.get(f"/api/v0/paths?limit={limit}").get_json()["paths"]) == want


def test_limit_at_most_200(app, client):
    site, token = make_site(app, cname="many.example.com", email="m@example.com")
    api = API(client, token, site["cname"])
    clock.freeze(dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    hits = [{"path": f"/p{i}", "session": "s"} for i in range(205)]
    assert api.post("/api/v0/count", {"hits": hits[:200]}).status_code == 202
    assert api.post("/api/v0/count", {"hits": hits[200:]}).status_code == 202
    body = api.get("/api/v0/paths?limit=1000").get_json()
    assert len(body["paths"]) == 200 and body["more"] is True


def test_negative_after_lists_from_the_start(api):
    assert ids(api.get("/api/v0/paths?after=-10&limit=2").get_json()) == [1, 2]


@pytest.mark.parametrize(("query", "message"), [
    ("limit=abc", 'invalid query parameters: formam: could not parse number: strconv.ParseInt: '
                  'parsing "abc": invalid syntax'),
    ("after=1e3", 'invalid query parameters: formam: could not parse number: strconv.ParseInt: '
                  'parsing "1e3": invalid syntax'),
    ("offset=1", 'unknown parameter: "offset"'),
])
def test_bad_parameters(api, query, message):
    assert_error(api.get(f"/api/v0/paths?{query}"), 400, message)


def test_needs_the_stats_permission(app, client):
    site, token = make_site(app, cname="count.example.com", perms=tokens.PERM_COUNT,
                            email="c@example.com")
    resp = client.get("/api/v0/paths", headers={"Authorization": f"Bearer {token}",
                                                 "Host": site["cname"]})
    assert_error(resp, 403, "requires 'stats' permissions")


def test_only_the_sites_own_paths(app, client, api):
    other, token = make_site(app, cname="other.example.com", email="o@example.com")
    other_api = API(client, token, other["cname"])
    assert other_api.post("/api/v0/count", {"hits": [{"path": "/theirs", "session": "x"}]}
                          ).status_code == 202
    assert [p["path"] for p in other_api.get("/api/v0/paths").get_json()["paths"]] == ["/theirs"]
    assert 7 not in ids(api.get("/api/v0/paths?after=5").get_json())


def test_wrong_method(api):
    assert_error(api.post("/api/v0/paths", {}), 405, "method not allowed")

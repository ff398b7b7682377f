"""Input that must be refused (or read back) without harm to anyone else: dates out of
range, numbers that overflow, texts of megabytes. The same rules on POST
/api/v0/count, the /count pixel and `goatcounter import` (issue 9, items 5 to 7)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from goatcounter import clock
from goatcounter.counting.pipeline import process as pipeline
from goatcounter.counting.pipeline import sizes
from goatcounter.storage import db
from tests.conftest import API, NO_LIMITS, UA, assert_error, assert_errors, make_site, query

RATELIMIT = NO_LIMITS
VISITOR = "81.2.69.160"
HEADER = ("2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,Referrer scheme,"
          "Screen size,Location,FirstVisit,Date\n")


def hit(**fields) -> dict:
    return {"path": "/p", "session": "visitor-1", **fields}


def count(api: API, *hits: dict):
    return api.post("/api/v0/count", {"hits": list(hits)})


def pixel(app, site, query_string: str, ua: str = UA):
    return app.test_client().get("/count?" + query_string,
                                 headers={"Host": site["cname"], "User-Agent": ua},
                                 environ_base={"REMOTE_ADDR": VISITOR})


def stored_hits(app) -> int:
    return query(app, "SELECT count(*) FROM hits")[0][0]


# Item 5: dates ------------------------------------------------------------------------

@pytest.mark.parametrize("when", [
    "0001-01-02T00:00:00Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
    "1989-12-31T23:59:59Z", "1969-07-20T20:17:00Z",
])
def test_a_created_at_before_1990_is_a_per_hit_error(app, api, when):
    resp = count(api, hit(path="/old", created_at=when), hit(path="/fine"))
    assert_errors(resp, 400, {"0": "created_at: before 1990-01-01."})
    assert [r[0] for r in query(app, "SELECT path FROM paths")] == ["/fine"]
    (first,) = query(app, "SELECT first_hit_at FROM sites")
    clock.parse_rfc3339(first[0])
    # The site still counts afterwards.
    assert count(api, hit(path="/next")).status_code == 202


def test_1990_itself_is_accepted(app, api):
    assert count(api, hit(created_at="1990-01-01T00:00:00Z")).status_code == 202
    assert query(app, "SELECT first_hit_at FROM sites")[0][0] == "1989-12-31T12:00:00Z"


def test_a_time_far_in_the_future_is_a_per_hit_error(api):
    resp = count(api, hit(created_at="9999-12-31T23:59:59-14:00"))
    assert_errors(resp, 400, {"0": "created_at: in the future."})


def test_years_are_written_with_four_digits():
    year_1 = -62135553600
    assert clock.rfc3339(year_1) == "0001-01-01T12:00:00Z"
    assert clock.rfc3339_seconds(year_1) == "0001-01-01T12:00:00Z"
    assert clock.rfc3339_seconds(-30610224000) == "1000-01-01T00:00:00Z"
    assert clock.rfc3339_seconds(1_700_000_000) == "2023-11-14T22:13:20Z"
    assert clock.parse_rfc3339(clock.rfc3339(year_1)).timestamp() == year_1


def test_a_short_year_already_stored_is_read_back(app, api):
    """What the server wrote before years were padded no longer breaks counting."""
    with app.app_context():
        db.write(lambda c: c.execute("UPDATE sites SET first_hit_at = '1-01-01T12:00:00Z',"
                                     " received_data = 1"))
    assert clock.parse_rfc3339("1-01-01T12:00:00Z").year == 1
    assert count(api, hit()).status_code == 202
    assert pixel(app, api_site(app), "p=/from-the-pixel").status_code == 200
    assert query(app, "SELECT count(*) FROM failed_hits")[0][0] == 0
    assert stored_hits(app) == 2


def api_site(app) -> dict:
    return dict(query(app, "SELECT * FROM sites", drain=False)[0])


def test_migration_pads_stored_years(tmp_path):
    from goatcounter.storage.db import _migrations
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE sites (id INTEGER PRIMARY KEY, first_hit_at TEXT)")
    conn.executemany("INSERT INTO sites (first_hit_at) VALUES (?)",
                     [("1-01-01T12:00:00Z",), ("999-12-31T12:00:00Z",), ("2026-01-02T00:00:00Z",)])
    script = dict(_migrations())["0009_four_digit_years"]
    conn.executescript(script)
    assert [r[0] for r in conn.execute("SELECT first_hit_at FROM sites ORDER BY id")] == [
        "0001-01-01T12:00:00Z", "0999-12-31T12:00:00Z", "2026-01-02T00:00:00Z"]


def test_times_that_overflow_are_refused_not_a_crash():
    with pytest.raises(ValueError):
        clock.parse_rfc3339("0001-01-01T00:00:00+14:00")
    assert clock.parse_rfc3339_seconds("0001-01-01T00:00:00+14:00") == -62135647200


def test_other_time_parameters_refuse_overflowing_times(api):
    resp = api.post("/api/v0/export", {"start_from_day": "0001-01-01T00:00:00+14:00"})
    assert_error(resp, 400)


# Item 6: numbers ----------------------------------------------------------------------

@pytest.mark.parametrize("size", ["1" + "0" * 400, 1e300])
def test_a_huge_size_is_a_400(app, api, size):
    body = '{"hits": [{"path": "/p", "session": "s", "size": ' + str(size) + "}]}"
    resp = api.post("/api/v0/count", body)
    body = assert_error(resp, 400)
    assert "out of range" in body["error"]
    assert len(body["error"]) < 200
    assert stored_hits(app) == 0


def test_size_messages_stay_short():
    with pytest.raises(sizes.SizeError) as info:
        sizes.width("x" * 10_000)
    assert len(str(info.value)) < 100
    with pytest.raises(sizes.SizeError):
        sizes.width([10**400])


@pytest.mark.parametrize("body", [
    '{"hits": [{"path": "/p", "session": "s", "bot": 1' + "0" * 30 + "}]}",
    '{"hits": [{"path": "/p", "session": "s", "bot": 1e400}]}',
    '{"start_from_hit_id": 1' + "0" * 30 + "}",
])
def test_numbers_beyond_64_bits_are_a_400(app, api, body):
    path = "/api/v0/export" if "start_from" in body else "/api/v0/count"
    assert_error(api.post(path, body), 400)


def test_query_numbers_beyond_64_bits_are_a_400(api):
    assert_error(api.get("/api/v0/test?perm=1" + "0" * 30), 400)


@pytest.mark.parametrize("query_string", ["s=1" + "0" * 400, "b=1" + "0" * 400])
def test_pixel_numbers_beyond_range_are_refused(app, site, query_string):
    resp = pixel(app, site, "p=/x&" + query_string)
    assert resp.status_code == 400
    assert "out of range" in resp.headers["X-Goatcounter"]
    assert len(resp.headers["X-Goatcounter"]) < 200
    assert stored_hits(app) == 0


@pytest.fixture
def site(app) -> dict:
    return make_site(app)[0]


# Item 7: lengths ----------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "error"), [
    ({"location": "X" * 65}, "location: must be shorter than 64 characters."),
    ({"location": "X" * 5_000_000}, "location: must be shorter than 64 characters."),
    ({"query": "utm_campaign=" + "c" * 3_000_000}, "query: must be shorter than 8192 characters."),
    ({"query": "utm_campaign=" + "c" * 256}, "campaign: must be shorter than 255 characters."),
    ({"path": "/" + "p" * 5_000_000}, "path: must be shorter than 2048 characters."),
    ({"ref": "https://e.com/" + "r" * 5_000_000}, "ref: must be shorter than 2048 characters."),
    ({"title": "t" * 1025}, "title: must be shorter than 1024 characters."),
    ({"user_agent": "Mozilla/5.0 " + "u" * 600, "ip": VISITOR},
     "user_agent_header: must be shorter than 512 characters."),
])
def test_long_texts_are_refused_by_the_api(app, api, fields, error):
    resp = count(api, hit(**fields), hit(path="/fine"))
    assert_errors(resp, 400, {"0": error})
    assert [r[0] for r in query(app, "SELECT path FROM paths")] == ["/fine"]
    assert query(app, "SELECT count(*) FROM campaigns")[0][0] == 0


def test_texts_at_their_limits_are_kept(app, api):
    resp = count(api, hit(location="US-TX" + "x" * 59, query="utm_campaign=" + "c" * 255))
    assert resp.status_code == 202
    assert query(app, "SELECT length(location) FROM hits")[0][0] == 64
    assert query(app, "SELECT length(name) FROM campaigns")[0][0] == 255


def test_the_pixel_refuses_the_same_campaign(app, site):
    resp = pixel(app, site, "p=/x&q=utm_campaign%3D" + "c" * 3000)
    assert resp.status_code == 400
    assert resp.headers["X-Goatcounter"] == \
        "not valid: campaign: must be shorter than 255 characters."
    assert stored_hits(app) == 0
    assert query(app, "SELECT count(*) FROM campaigns")[0][0] == 0
    resp = pixel(app, site, "p=/x&q=utm_campaign%3D" + "c" * 255)
    assert resp.status_code == 200
    assert stored_hits(app) == 1


def test_long_values_never_reach_the_caches(app, api):
    """The cleaning steps cache their results; a value far over any limit is refused
    (or left out) before them, so no client can fill them with megabytes."""
    from goatcounter.counting.pipeline import languages, locations, paths, referrers
    cached = (paths.clean_path, referrers.clean_referrer, referrers.campaign, referrers.is_spam,
              languages.iso3, locations.lookup_ip)
    for f in cached:
        f.cache_clear()
    resp = count(api, hit(path="/" + "p" * 100_000), hit(ref="r" * 100_000),
                 hit(query="q" * 100_000))
    assert sorted(resp.get_json()["errors"]) == ["0", "1", "2"]
    assert [f.cache_info().currsize for f in cached] == [0] * len(cached)
    assert count(api, hit(language="e" * 100_000, ip="1" * 100_000)).status_code == 202
    assert languages.iso3.cache_info().currsize == locations.lookup_ip.cache_info().currsize == 0


# The importer: the same checks ----------------------------------------------------------

def row(**cells: str) -> str:
    values = {"path": "/a", "title": "A", "event": "0", "ua": "", "browser": "Firefox 131",
              "system": "Linux ", "session": "ab-1", "bot": "0", "ref": "", "scheme": "o",
              "size": '"1920,0,1"', "location": "NL", "first": "1",
              "date": "2026-11-20T08:00:00Z", **cells}
    return ",".join(values.values()) + "\n"


def test_import_refuses_what_the_api_refuses(app, site, tmp_path: Path):
    lines = [
        row(date="0001-01-01T00:00:00Z"),
        row(date="0001-01-01T00:00:00+14:00"),
        row(size='"1' + "0" * 400 + ',0,1"'),
        row(bot="1" + "0" * 30),
        row(session="1" + "0" * 40 + "-1"),
        row(location="X" * 65),
        row(path="/" + "p" * 3000),
        row(),
    ]
    path = tmp_path / "export.csv"
    path.write_text(HEADER + "".join(lines))
    clock.freeze(1_800_000_000.0)
    result = app.test_cli_runner().invoke(args=["import", str(path)])
    errors = [line for line in result.output.splitlines() if line.startswith("line ")]
    assert errors == [
        "line 2: created_at: before 1990-01-01.",
        "line 3: created_at: before 1990-01-01.",
        "line 4: Screen size: out of range: '100000000000000000000000000000000000000...",
        "line 5: Bot: out of range",
        "line 6: Session: not a session id: '1000000000000000000000000000000000000000'",
        "line 7: location: must be shorter than 64 characters.",
        "line 8: path: must be shorter than 2048 characters.",
    ], result.output
    assert result.exit_code == 1
    assert stored_hits(app) == 1


def test_validate_is_shared(monkeypatch):
    assert pipeline.validate("/p", "", "", "", pipeline.EARLIEST - 1, 2e9) == \
        "created_at: before 1990-01-01."
    assert pipeline.validate("/p", "", "", "", pipeline.EARLIEST, 2e9) is None

"""The export API (spec 10.4 to 10.6, 11.1) and the CSV format (spec 13)."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import os
import random
import re
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from goatcounter import clock
from goatcounter.accounts import sites, tokens
from goatcounter.counting import store
from goatcounter.counting.pipeline.process import Hit
from goatcounter.exports import csvformat, exporter
from goatcounter.storage import db
from tests import scenario
from tests.conftest import API, assert_error, assert_errors, make_site

HEADER = ("2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,Referrer scheme,"
          "Screen size,Location,FirstVisit,Date\n")
T0 = 1_795_000_000  # 2026-11-18T11:06:40Z
KEYS = ["id", "site_id", "format", "start_from_hit_id", "last_hit_id", "path", "created_at",
        "finished_at", "num_rows", "size", "hash"]


@pytest.fixture
def app_config(request, tmp_path) -> dict[str, Any]:
    """The usual test settings, plus those a test passes as its parameter."""
    config = {"INSTANCE": str(tmp_path / "instance"), "TESTING": True,
              "SECRET_KEY": "test-secret", "COUNT_IN_BACKGROUND": False}
    config.update(getattr(request, "param", {}))
    return config


def make_hit(path: str = "/", **kw: Any) -> Hit:
    """A hit as the pipeline makes it, with a preset session (as an import has)."""
    values: dict[str, Any] = {
        "path": path, "title": "", "event": False, "ref": "", "ref_scheme": "o",
        "campaign": "", "width": 0, "bot": 0, "browser": None, "system": None,
        "location": "", "language": "", "user_agent": "", "session_key": None,
        "created_at": T0, "session": None, "first_visit": True}
    values.update(kw)
    return Hit(**values)


def store_hits(app: Flask, site_id: int, hits: list[Hit]) -> None:
    with app.app_context():
        site = sites.get(db.get_db(), site_id)
        store.save(site, hits, preset_sessions=True)


def gunzip_text(data: bytes) -> str:
    return gzip.decompress(data).decode("utf-8")


def start(api: API, body: Any = None) -> dict[str, Any]:
    resp = api.post("/api/v0/export", body)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    return resp.get_json()


def download(api: API, export_id: int) -> str:
    resp = api.get(f"/api/v0/export/{export_id}/download")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return gunzip_text(resp.get_data())


# The Go-compatible writer --------------------------------------------------------------

@pytest.mark.parametrize(("value", "want"), [
    ("", ""),
    ("plain", "plain"),
    ("a,b", '"a,b"'),
    ('say "hi"', '"say ""hi"""'),
    ("two\nlines", '"two\nlines"'),
    ("cr\rhere", '"cr\rhere"'),
    (" leading space", '" leading space"'),
    ("\tleading tab", '"\tleading tab"'),
    ("trailing space ", "trailing space "),
    ("in the middle", "in the middle"),
    ("\\.", '"\\."'),
    ("\\.more", "\\.more"),
    ("\u00a0no-break space", '"\u00a0no-break space"'),
    ("\u3000ideographic space", '"\u3000ideographic space"'),
    ("\u2028line separator", '"\u2028line separator"'),
    # Python's isspace() says yes to these, Go's unicode.IsSpace no.
    ("\x1cfile separator", "\x1cfile separator"),
    ("\u200bzero width", "\u200bzero width"),
    (" ", '" "'),
    ("Linux ", "Linux "),
])
def test_quote_like_go(value, want):
    assert csvformat.quote(value) == want


def test_header_line():
    assert csvformat.HEADER == HEADER


@pytest.mark.parametrize(("session", "text"), [
    (None, "0-0"),
    (bytes.fromhex("0287fb97cbed4e4f8e4f5c975b8fee06"), "287fb97cbed4e4f-8e4f5c975b8fee06"),
    (bytes.fromhex("000000000000000a0000000000000000"), "a-0"),
    (bytes.fromhex("ffffffffffffffff0000000000000001"), "ffffffffffffffff-1"),
    (bytes.fromhex("8168cb83711b45e4846e29f6bbae2453"), "8168cb83711b45e4-846e29f6bbae2453"),
    (bytes.fromhex("8168cb83711b45e4046e29f6bbae2453"), "8168cb83711b45e4-46e29f6bbae2453"),
    (bytes.fromhex("0000000000000000ffffffffffffffff"), "0-ffffffffffffffff"),
])
def test_session_text(session, text):
    assert csvformat.session_text(session) == text
    assert csvformat.parse_session(text) == session


@pytest.mark.parametrize(("cell", "session"), [
    ("0-5", bytes(8) + (5).to_bytes(8, "big")),
    ("5-0", (5).to_bytes(8, "big") + bytes(8)),
    (" 0-0 ", None),
    ("00-000", None),
])
def test_parse_session(cell, session):
    assert csvformat.parse_session(cell) == session


@pytest.mark.parametrize(("session", "text"), [
    (b"", "0-0"),
    (bytes.fromhex("81"), "81-0"),
    (bytes.fromhex("8168cb83711b45e4"), "8168cb83711b45e4-0"),
    (bytes.fromhex("8168cb83711b45e4846e"), "8168cb83711b45e4-846e"),
    (bytes.fromhex("8168cb83711b45e4846e29f6bbae2453ff"), "8168cb83711b45e4-846e29f6bbae2453"),
])
def test_session_text_of_other_lengths(session, text):
    """Sessions are 16 bytes; any other length is written as the two halves would be."""
    assert csvformat.session_text(session) == text


@pytest.mark.parametrize("cell", ["1--5", "-1-5", "5", "", "x-1", "10000000000000000-1"])
def test_parse_session_refuses_what_is_not_a_session(cell):
    with pytest.raises(ValueError, match=r"not a session id|invalid literal"):
        csvformat.parse_session(cell)


@pytest.mark.parametrize(("cell", "want"), [
    ("Firefox 131", ("Firefox", "131")), ("Linux ", ("Linux", "")), (" ", ("", "")),
    ("", None), ("Samsung Internet 23", ("Samsung Internet", "23")),
    ("Firefox", ("Firefox", "")),
])
def test_name_version(cell, want):
    assert csvformat.parse_name_version(cell) == want
    if want is not None and cell != "Firefox":
        assert csvformat.name_version(*want) == cell


@pytest.mark.parametrize(("size", "text"), [
    (0, "0.1"), (1, "0.1"), (100_000, "0.1"), (1024 * 1024, "1.0"),
    (int(2.34 * 1024 * 1024), "2.3"), (int(2.36 * 1024 * 1024), "2.4"),
])
def test_size_mib(size, text):
    assert exporter.size_mib(size) == text


# CSV content, byte for byte ------------------------------------------------------------

def test_csv_byte_for_byte(app, api, site_token):
    site, _ = site_token
    s1 = bytes.fromhex("00000000000000ab0000000000000001")
    s2 = bytes.fromhex("8168cb83711b45e4846e29f6bbae2453")
    store_hits(app, site["id"], [
        make_hit("/a,b", title='Say "hi", world', width=1920, browser=("Firefox", "131"),
                 system=("Linux", ""), location="NL", session=s1),
        make_hit("/multi", title="line one\nline two\r\nthree", ref="example.com/p,q",
                 ref_scheme="h", browser=("", ""), system=("", ""), first_visit=False,
                 created_at=T0 + 61),
        make_hit("signup-click", title=" leading space", event=True, location="US-TX",
                 session=s2, width=390, created_at=T0 + 3600),
        make_hit("/dot", title="\\.", ref="newsletter", ref_scheme="c", session=s2,
                 created_at=T0 + 86400),
        make_hit("/tab", title="\ttabbed", browser=("Edge", "131"),
                 system=("Windows", "10"), created_at=T0 + 86401),
        make_hit("/empty", created_at=T0 + 86402),
        # The path keeps its first title; this hit's title is not exported.
        make_hit("/a,b", title="Another title", session=s1, first_visit=False,
                 created_at=T0 + 86403),
    ])
    export = start(api)
    assert export["num_rows"] == 7
    assert download(api, export["id"]) == HEADER + (
        '"/a,b","Say ""hi"", world",0,,Firefox 131,Linux ,ab-1,0,,o,"1920,0,1",NL,1,'
        "2026-11-18T11:06:40Z\n"
        '/multi,"line one\nline two\r\nthree",0,," "," ",0-0,0,"example.com/p,q",h,"0,0,1",'
        ",0,2026-11-18T11:07:41Z\n"
        'signup-click," leading space",1,,,,8168cb83711b45e4-846e29f6bbae2453,0,,o,'
        '"390,0,1",US-TX,1,2026-11-18T12:06:40Z\n'
        '/dot,"\\.",0,,,,8168cb83711b45e4-846e29f6bbae2453,0,newsletter,c,"0,0,1",,1,'
        "2026-11-19T11:06:40Z\n"
        '/tab,"\ttabbed",0,,Edge 131,Windows 10,0-0,0,,o,"0,0,1",,1,2026-11-19T11:06:41Z\n'
        '/empty,,0,,,,0-0,0,,o,"0,0,1",,1,2026-11-19T11:06:42Z\n'
        '"/a,b","Say ""hi"", world",0,,,,ab-1,0,,o,"0,0,1",,0,2026-11-19T11:06:43Z\n')


def _reference_csv(app: Flask, site_id: int) -> str:
    """The export of a site's hits written the plain way, one `csvformat.line` per hit
    from the joined rows: what a faster writer must give byte for byte."""
    with app.app_context():
        rows = db.get_db().execute(
            "SELECT p.path, p.title, p.event, b.name, b.version, s.name, s.version,"
            " h.session, r.ref, r.ref_scheme, h.width, h.location, h.first_visit,"
            " h.created_at FROM hits h JOIN paths p ON p.id = h.path_id"
            " JOIN refs r ON r.id = h.ref_id LEFT JOIN browsers b ON b.id = h.browser_id"
            " LEFT JOIN systems s ON s.id = h.system_id WHERE h.site_id = :site"
            " ORDER BY h.id", {"site": site_id}).fetchall()
    out = [HEADER]
    for (path, title, event, b_name, b_version, s_name, s_version, session, ref, scheme,
         width, location, first, at) in rows:
        out.append(csvformat.line((
            path, title, csvformat.flag(event), "",
            "" if b_name is None else csvformat.name_version(b_name, b_version),
            "" if s_name is None else csvformat.name_version(s_name, s_version),
            csvformat.session_text(session), "0", ref, scheme,
            csvformat.size_text(width), location, csvformat.flag(first),
            csvformat.date_text(at))))
    return "".join(out)


# Times around the edges a cached date could get wrong: minutes, days, years, the
# epoch, and the first and last second of four-digit years.
EDGE_TIMES = [T0, T0 + 59, T0 + 60, T0 + 3599, T0 + 3600, 1_798_761_599, 1_798_761_600,
              0, -1, -61, -62_135_596_800, 253_402_300_799, 951_782_400, 1_709_164_800]


def test_csv_is_the_plain_writers_byte_for_byte(app, api, site_token, monkeypatch):
    """Many hits over batches and memo resets, with cells that need quoting and times at
    every edge: the file is the plain writer's CSV, gzipped in one stream at level 6
    (so a file written again, in other pieces, has the same SHA-256)."""
    site, _ = site_token
    monkeypatch.setattr(exporter, "BATCH", 7)
    monkeypatch.setattr(exporter, "MEMO_LIMIT", 5)
    rng = random.Random(7)
    titles = ["", "plain", "a,b", 'say "hi"', " lead", "\\.", "two\nlines", "\u00a0nbsp",
              "\u200bzero width", "=1+2", "Über"]
    sessions = [None, bytes(16), bytes.fromhex("00000000000000ab0000000000000001"),
                *(bytes(rng.randrange(256) for _ in range(16)) for _ in range(12))]
    names = [None, ("", ""), ("Firefox", "131"), ("Linux", ""), ("Samsung Internet", "23"),
             (" lead", "1"), ("a,b", "2")]
    hits = []
    for i in range(120):
        at = EDGE_TIMES[i] if i < len(EDGE_TIMES) else T0 + rng.randrange(-10**6, 10**8)
        hits.append(make_hit(
            f"/p{rng.randrange(20)}" + rng.choice(["", ",x", '"q"']),
            title=rng.choice(titles), event=rng.random() < 0.2,
            ref=rng.choice(["", "example.com/a,b", "news", " x"]),
            ref_scheme=rng.choice(["o", "h", "c", "g"]),
            width=rng.choice([0, 390, 1920, 2560]), browser=rng.choice(names),
            system=rng.choice(names), location=rng.choice(["", "NL", "US-TX", " x", "a,b"]),
            session=rng.choice(sessions), first_visit=rng.random() < 0.7, created_at=at))
    store_hits(app, site["id"], hits)
    export = start(api)
    assert export["num_rows"] == 120
    data = Path(export["path"]).read_bytes()
    want = _reference_csv(app, site["id"])
    assert gunzip_text(data) == want
    deflate = zlib.compressobj(exporter.GZIP_LEVEL, zlib.DEFLATED, 31)
    assert data == deflate.compress(want.encode()) + deflate.flush()


class _FailingFile(io.BytesIO):
    """A file that fails on its n-th write, as a full disk does."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.writes, self.fail_at = 0, fail_at

    def write(self, data: Any) -> int:
        self.writes += 1
        if self.writes >= self.fail_at:
            raise OSError(28, "No space left on device")
        return super().write(data)


def _gzip_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "export-gzip"]


def test_a_failing_write_fails_the_export(app, site_token, monkeypatch):
    """The file is written by another thread than the one reading hits: its error still
    reaches the export, and no thread is left behind."""
    site = site_token[0]
    monkeypatch.setattr(exporter, "BATCH", 20)
    monkeypatch.setattr(exporter, "CHUNK", 1)
    # Random titles, which zlib can't shrink much: it writes many pieces.
    store_hits(app, site["id"], [make_hit(f"/p{i}", title=os.urandom(500).hex())
                                 for i in range(400)])
    with app.app_context():
        assert exporter.write_csv(db.get_db(), site["id"], 0, _FailingFile(10**6)).rows == 400
        for fail_at in (1, 5):
            file = _FailingFile(fail_at)
            with pytest.raises(OSError, match="No space left"):
                exporter.write_csv(db.get_db(), site["id"], 0, file)
            assert file.writes == fail_at
            assert _gzip_threads() == []


def test_a_failing_read_stops_the_writer(app, site_token, monkeypatch):
    site = site_token[0]
    monkeypatch.setattr(exporter, "BATCH", 2)
    store_hits(app, site["id"], [make_hit(f"/p{i}") for i in range(9)])
    real = db.tuples
    calls = []

    def failing(conn, sql, args=()):
        if "after" in args:
            calls.append(args["after"])
            if len(calls) == 3:
                raise RuntimeError("lost the database")
        return real(conn, sql, args)

    monkeypatch.setattr(db, "tuples", failing)
    with app.app_context(), pytest.raises(RuntimeError, match="lost the database"):
        exporter.write_csv(db.get_db(), site["id"], 0, io.BytesIO())
    assert calls == [0, 2, 4]
    assert _gzip_threads() == []


def test_paths_and_referrers_are_read_a_batch_at_a_time(app, api, site_token, monkeypatch):
    """One statement for the new paths of a batch of hits (and one for its referrers),
    not one for each: a site may have hundreds of thousands."""
    site = site_token[0]
    monkeypatch.setattr(exporter, "BATCH", 10)
    store_hits(app, site["id"], [make_hit(f"/p{i % 25}", ref=f"r{i % 35}.example",
                                          ref_scheme="h") for i in range(40)])
    real = db.tuples
    tables: list[str] = []

    def counting(conn, sql, args=()):
        tables.append(sql.split(" FROM ", 1)[1].split()[0])
        return real(conn, sql, args)

    monkeypatch.setattr(db, "tuples", counting)
    rows = list(csv.reader(io.StringIO(download(api, start(api)["id"]))))[1:]
    assert [(r[0], r[8]) for r in rows] == [(f"/p{i % 25}", f"r{i % 35}.example")
                                           for i in range(40)]
    # Batches 1 to 3 bring new paths and referrers, the 4th only new referrers; the
    # last read of hits finds no more.
    assert tables == ["hits", "paths", "refs"] * 3 + ["hits", "refs", "hits"]


@pytest.mark.parametrize("batch", [1, 5, 6, 100])
def test_batches_end_at_the_last_hit_of_a_rewritten_export(app, api, site_token,
                                                           monkeypatch, batch):
    """Hits are read a batch at a time after the last one's id, a rewrite's up to its
    recorded last hit, whether or not that ends a batch."""
    site = site_token[0]
    monkeypatch.setattr(exporter, "BATCH", batch)
    store_hits(app, site["id"], [make_hit(f"/p{i}", created_at=T0 + i) for i in range(10)])
    first = start(api)
    store_hits(app, site["id"], [make_hit(f"/q{i}", created_at=T0 + i) for i in range(10)])
    second = start(api, {"start_from_hit_id": 5})
    assert (second["num_rows"], second["last_hit_id"]) == (15, 20)
    recorded = Path(first["path"]).read_bytes()
    os.unlink(first["path"])
    assert api.get(f"/api/v0/export/{first['id']}/download").get_data() == recorded
    rows = list(csv.reader(io.StringIO(gunzip_text(recorded))))[1:]
    assert [r[0] for r in rows] == [f"/p{i}" for i in range(10)]
    rows = list(csv.reader(io.StringIO(download(api, second["id"]))))[1:]
    assert [r[0] for r in rows] == [f"/p{i}" for i in range(5, 10)] + [f"/q{i}" for i in range(10)]


def test_export_without_rows_is_the_header(api):
    export = start(api)
    assert (export["num_rows"], export["last_hit_id"]) == (0, 0)
    assert download(api, export["id"]) == HEADER


def test_rows_in_hit_id_order_across_batches(app, api, site_token, monkeypatch):
    site, _ = site_token
    monkeypatch.setattr(exporter, "BATCH", 3)
    # Created out of time order: hit ids, not times, decide the order.
    store_hits(app, site["id"], [make_hit(f"/p{i}", created_at=T0 - i) for i in range(8)])
    export = start(api)
    rows = list(csv.reader(io.StringIO(download(api, export["id"]))))[1:]
    assert [r[0] for r in rows] == [f"/p{i}" for i in range(8)]
    assert (export["num_rows"], export["last_hit_id"]) == (8, 8)


# The export object ------------------------------------------------------------------

def test_export_object(app, api, site_token):
    site, _ = site_token
    clock.freeze(dt.datetime(2026, 11, 26, 12, 19, 51, tzinfo=dt.UTC))
    store_hits(app, site["id"], [make_hit(f"/p{i}") for i in range(3)])
    resp = api.post("/api/v0/export", {})
    assert resp.status_code == 202
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    body = resp.get_json()
    # Every field of spec 11.1, in its order; `error` only when the export failed
    # (DECISIONS: "error in the export object").
    assert list(body) == KEYS
    assert body["id"] == 1
    assert body["site_id"] == site["id"]
    assert body["format"] == "csv"
    assert body["start_from_hit_id"] == 0
    assert body["last_hit_id"] == 3
    assert body["created_at"] == "2026-11-26T12:19:51Z"
    assert body["finished_at"] == "2026-11-26T12:19:51Z"
    assert body["num_rows"] == 3
    assert body["size"] == "0.1"
    folder = os.path.realpath(app.config["EXPORT_PATH"])
    assert body["path"] == os.path.join(
        folder, f"goatcounter-export-{site['code']}-20261126T121951Z-0.csv.gz")
    data = Path(body["path"]).read_bytes()
    assert body["hash"] == "sha256-" + hashlib.sha256(data).hexdigest()

    status = api.get(f"/api/v0/export/{body['id']}")
    assert status.status_code == 200
    assert status.get_json() == body

    dl = api.get(f"/api/v0/export/{body['id']}/download")
    assert dl.status_code == 200
    assert dl.headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in dl.headers
    name = os.path.basename(body["path"])
    assert dl.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert dl.get_data() == data


def test_export_object_matches_upstream_shape(app):
    api = scenario.setup(app)
    scenario.count_all(api)
    ours = start(api, {})
    theirs = scenario.reply("50")["response"]["body"]
    # Upstream always sends `error` (null); we leave it out when there is none and add
    # `format` (DECISIONS: "error in the export object").
    assert set(ours) == (set(theirs) - {"error"}) | {"format"}
    for key in ("id", "site_id", "start_from_hit_id", "last_hit_id", "num_rows", "size"):
        assert ours[key] == theirs[key], key
    assert re.fullmatch(r"sha256-[0-9a-f]{64}", ours["hash"])
    pattern = r".*/goatcounter-export-serve-[0-9a-z]+-\d{8}T\d{6}Z-0\.csv\.gz"
    assert re.fullmatch(pattern, theirs["path"])
    assert re.fullmatch(pattern, ours["path"])


def test_missing_or_empty_format_is_csv(api):
    assert start(api)["format"] == "csv"
    assert start(api, {"format": ""})["format"] == "csv"
    assert start(api, {"format": "csv", "start_from_hit_id": 0})["format"] == "csv"


@pytest.mark.parametrize(("body", "message"), [
    ({"format": "json"}, 'unknown format: "json"; this server writes "csv" exports'),
    ({"start_from_day": "2026-11-01T00:00:00Z"}, "start_from_day is only valid for JSON exports"),
    ({"nope": 1}, 'unknown parameter: "nope"'),
    ({"start_from_hit_id": "5"},
     'invalid JSON: cannot use string as number for field "start_from_hit_id"'),
])
def test_bad_start_requests(api, body, message):
    assert_error(api.post("/api/v0/export", body), 400, message)


def test_needs_the_export_permission(app, client):
    site, token = make_site(app, perms=tokens.PERM_COUNT)
    api = API(client, token, site["cname"])
    assert_error(api.post("/api/v0/export"), 403, "requires 'export' permissions")
    assert_error(api.get("/api/v0/export/1"), 403, "requires 'export' permissions")


def test_same_second_exports_get_their_own_files(api):
    clock.freeze(T0)
    first, second = start(api), start(api)
    assert first["path"] != second["path"]
    assert second["path"] == first["path"].replace("-0.csv.gz", "-0-2.csv.gz")
    assert os.path.exists(first["path"]) and os.path.exists(second["path"])


# The cursor ------------------------------------------------------------------------

def test_cursor_across_three_exports(app, api, site_token):
    site, _ = site_token
    store_hits(app, site["id"], [make_hit("/one"), make_hit("/two")])
    first = start(api)
    assert (first["start_from_hit_id"], first["last_hit_id"], first["num_rows"]) == (0, 2, 2)

    store_hits(app, site["id"], [make_hit("/three"), make_hit("/four"), make_hit("/five")])
    second = start(api, {"start_from_hit_id": first["last_hit_id"]})
    assert (second["start_from_hit_id"], second["last_hit_id"], second["num_rows"]) == (2, 5, 3)
    assert second["path"].endswith("-2.csv.gz")

    store_hits(app, site["id"], [make_hit("/six")])
    third = start(api, {"start_from_hit_id": second["last_hit_id"]})
    assert (third["start_from_hit_id"], third["last_hit_id"], third["num_rows"]) == (5, 6, 1)

    paths = [[r[0] for r in csv.reader(io.StringIO(download(api, e["id"])))][1:]
             for e in (first, second, third)]
    assert paths == [["/one", "/two"], ["/three", "/four", "/five"], ["/six"]]

    # Nothing new: no rows, and the cursor stays where it was.
    fourth = start(api, {"start_from_hit_id": third["last_hit_id"]})
    assert (fourth["last_hit_id"], fourth["num_rows"]) == (6, 0)
    assert download(api, fourth["id"]) == HEADER


def test_cursor_skips_other_sites_hits(app, api, site_token):
    site, _ = site_token
    other, _ = make_site(app, cname="other.example.com", email="other@example.com")
    store_hits(app, site["id"], [make_hit("/mine")])
    store_hits(app, other["id"], [make_hit("/theirs")])
    store_hits(app, site["id"], [make_hit("/mine-too")])
    export = start(api)
    assert (export["num_rows"], export["last_hit_id"]) == (2, 3)
    assert "/theirs" not in download(api, export["id"])


# Finding exports --------------------------------------------------------------------

def test_another_sites_export_is_not_found(app, api):
    other, other_token = make_site(app, cname="other.example.com", email="other@example.com")
    theirs = start(API(api.client, other_token, other["cname"]))
    for url in (f"/api/v0/export/{theirs['id']}", f"/api/v0/export/{theirs['id']}/download"):
        assert_error(api.get(url), 404, "not found")


def test_unknown_and_non_numeric_ids(api):
    not_found = scenario.reply("90")["response"]
    resp = api.get("/api/v0/export/999")
    assert (resp.status_code, resp.get_json()) == (not_found["status"], not_found["body"])
    bad_id = scenario.reply("91")["response"]
    for url in ("/api/v0/export/abc", "/api/v0/export/abc/download",
                "/api/v0/export/99999999999"):
        assert_errors(api.get(url), bad_id["status"], bad_id["body"]["errors"])


# Retention ---------------------------------------------------------------------------

def test_expired_file_is_gone(app, api):
    clock.freeze(T0)
    export = start(api)
    clock.advance(24 * 3600)
    assert api.get(f"/api/v0/export/{export['id']}/download").status_code == 200
    clock.advance(1)
    resp = api.get(f"/api/v0/export/{export['id']}/download")
    assert_error(resp, 410, "exports are kept for 24 hours; this export file has been deleted")
    assert not os.path.exists(export["path"])
    # The record stays.
    assert api.get(f"/api/v0/export/{export['id']}").get_json() == export


@pytest.mark.parametrize("app_config", [{"EXPORT_RETENTION_HOURS": 2}], indirect=True)
def test_retention_is_configurable(app, api):
    clock.freeze(T0)
    export = start(api)
    clock.advance(2 * 3600 + 1)
    assert_error(api.get(f"/api/v0/export/{export['id']}/download"), 410,
                 "exports are kept for 2 hours; this export file has been deleted")


def test_a_missing_file_is_written_again_from_its_hits(app, api, site_token):
    """Another app server's export (or a file removed by hand) is written again from the
    same range of hits, byte for byte the recorded file; hits that came later stay out."""
    site = site_token[0]
    store_hits(app, site["id"], [make_hit(f"/p{i}", title=f"Page {i}", created_at=T0 + i)
                                 for i in range(30)])
    export = start(api)
    with open(export["path"], "rb") as fh:
        recorded = fh.read()
    os.unlink(export["path"])
    store_hits(app, site["id"], [make_hit("/later", created_at=T0 + 100)])
    resp = api.get(f"/api/v0/export/{export['id']}/download")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_data() == recorded
    assert "sha256-" + hashlib.sha256(recorded).hexdigest() == export["hash"]
    assert os.listdir(os.path.dirname(export["path"])) == [os.path.basename(export["path"])]
    # A record of another server's folder: the file is looked for, and written, here.
    elsewhere = "/srv/other-server/exports/" + os.path.basename(export["path"])
    with app.app_context():
        db.write(lambda c: c.execute("UPDATE exports SET path = :p WHERE id = :id",
                                     {"p": elsewhere, "id": export["id"]}))
    assert api.get(f"/api/v0/export/{export['id']}/download").get_data() == recorded
    os.unlink(export["path"])
    assert api.get(f"/api/v0/export/{export['id']}/download").get_data() == recorded


@pytest.mark.parametrize("change", [
    "UPDATE paths SET title = 'Renamed' WHERE path = '/p3'",
    "DELETE FROM hits WHERE id = (SELECT min(id) FROM hits)",
])
def test_a_missing_file_whose_hits_changed_is_gone(app, api, site_token, change):
    store_hits(app, site_token[0]["id"], [make_hit(f"/p{i}", title=f"Page {i}",
                                                   created_at=T0 + i) for i in range(5)])
    export = start(api)
    os.unlink(export["path"])
    with app.app_context():
        db.write(lambda c: c.execute(change))
    assert_error(api.get(f"/api/v0/export/{export['id']}/download"), 410,
                 "this export's file is not on this server, and the hits it held have changed"
                 " since it was made (deleted, or a path renamed): start a new export")
    # Nothing is left behind of the attempt.
    assert os.listdir(os.path.dirname(export["path"])) == []


def test_never_serves_files_outside_the_exports_folder(app, api, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for download")
    clock.freeze(T0)
    export = start(api)
    url = f"/api/v0/export/{export['id']}/download"
    outside = (str(secret), os.path.join(os.path.dirname(export["path"]), "..", "..",
                                         "secret.txt"))
    for path in outside:
        with app.app_context():
            db.write(lambda c, p=path: c.execute("UPDATE exports SET path = :p WHERE id = :id",
                                                 {"p": p, "id": export["id"]}))
        assert api.get(url).status_code == 410
        # Past its retention a file is deleted, but never one outside the folder.
        clock.advance(25 * 3600)
        assert api.get(url).status_code == 410
        assert secret.read_text() == "not for download"


def test_purge(app, api):
    clock.freeze(T0)
    export = start(api)
    folder = Path(export["path"]).parent
    old_orphan = folder / "goatcounter-export-x-20261101T000000Z-0.csv.gz"
    new_orphan = folder / "goatcounter-export-x-20261118T000000Z-0.csv.gz"
    other = folder / "notes.txt"
    for f in (old_orphan, new_orphan, other):
        f.write_bytes(b"")
    os.utime(old_orphan, (T0 - 25 * 3600, T0 - 25 * 3600))
    os.utime(other, (T0 - 25 * 3600, T0 - 25 * 3600))
    os.utime(new_orphan, (T0 - 3600, T0 - 3600))

    assert exporter.purge(app) == 1
    assert not old_orphan.exists()
    assert new_orphan.exists() and os.path.exists(export["path"])

    clock.advance(24 * 3600 + 1)
    assert exporter.purge(app) == 2
    assert not new_orphan.exists() and not os.path.exists(export["path"])
    # Only export files are touched.
    assert other.exists()


def test_starting_an_export_purges(api):
    clock.freeze(T0)
    first = start(api)
    clock.advance(25 * 3600)
    start(api)
    assert not os.path.exists(first["path"])


# Rate limit ---------------------------------------------------------------------------

@pytest.mark.parametrize("app_config", [{"RATELIMIT": "export:2/3600"}], indirect=True)
def test_rate_limit_headers(app, api):
    clock.freeze(T0)
    first = api.post("/api/v0/export")
    assert first.status_code == 202
    assert (first.headers["X-Rate-Limit-Limit"], first.headers["X-Rate-Limit-Remaining"],
            first.headers["X-Rate-Limit-Reset"]) == ("2", "1", "3600")
    clock.advance(6.3)
    second = api.post("/api/v0/export")
    assert (second.headers["X-Rate-Limit-Remaining"], second.headers["X-Rate-Limit-Reset"]) \
        == ("0", "3594")
    third = api.post("/api/v0/export")
    body = assert_error(third, 429)
    assert body["error"].startswith("rate limited exceeded; try again in 59m53.7")
    assert third.headers["Retry-After"] == third.headers["X-Rate-Limit-Reset"] == "3594"
    # Status and downloads are not in the export bucket.
    status = api.get(f"/api/v0/export/{first.get_json()['id']}")
    assert status.status_code == 200
    assert status.headers["X-Rate-Limit-Limit"] != "2"


# Upstream's export of the recorded hits -----------------------------------------------

# Columns DECISIONS lets differ: referrers sent to the API are cleaned like /count's
# (upstream keeps them as sent, scheme "o"), and browser names are ua-parser's. The rows
# where ours differ, with what ours are.
BROWSER, SYSTEM, SESSION, REFERRER, SCHEME = 4, 5, 6, 8, 9
OUR_BROWSERS = {10: "Edge 131", 11: "Edge 131", 12: "Edge 131"}
OUR_REFERRERS = {
    0: ("Google", "g"), 5: ("Hacker News", "g"), 8: ("Email", "g"),
    10: ("www.bing.com/search", "h"), 13: ("Telegram Messenger", "g"),
    21: ("example.org", "h"), 23: ("localhost:8080/dev", "h"), 24: ("duckduckgo.com", "h"),
    27: ("twitter.com/search?q=https%3A%2F%2Ft.co%2Fabc123", "h"),
}


def test_recorded_hits_export_like_upstream(app):
    api = scenario.setup(app)
    scenario.count_all(api)
    export = start(api)
    ours_text = download(api, export["id"])
    theirs_text = (scenario.FIXTURES / "export.csv").read_text(encoding="utf-8")
    assert gzip.decompress((scenario.FIXTURES / "export.csv.gz").read_bytes()).decode() \
        == theirs_text
    assert ours_text.splitlines(keepends=True)[0] == theirs_text.splitlines(keepends=True)[0]
    ours = list(csv.reader(io.StringIO(ours_text, newline="")))[1:]
    theirs = list(csv.reader(io.StringIO(theirs_text, newline="")))[1:]
    assert len(ours) == len(theirs) == 54

    sessions: dict[str, str] = {}
    for i, (mine, upstream) in enumerate(zip(ours, theirs, strict=True)):
        assert mine[BROWSER] == OUR_BROWSERS.get(i, upstream[BROWSER]), i
        assert (mine[REFERRER], mine[SCHEME]) == OUR_REFERRERS.get(
            i, (upstream[REFERRER], upstream[SCHEME])), i
        # Random ids: the same rows must share a session.
        assert sessions.setdefault(upstream[SESSION], mine[SESSION]) == mine[SESSION], i
        for col, (a, b) in enumerate(zip(mine, upstream, strict=True)):
            if col not in (BROWSER, SESSION, REFERRER, SCHEME):
                assert a == b, (i, col, a, b)
    assert len(set(sessions.values())) == len(sessions) == 17
    # Our CSV of the same rows with upstream's cells in the columns that may differ
    # is upstream's file, byte for byte: the writer is Go's.
    rewritten = [mine[:BROWSER] + upstream[BROWSER:SESSION + 1] + mine[SESSION + 1:REFERRER]
                 + upstream[REFERRER:SCHEME + 1] + mine[SCHEME + 1:]
                 for mine, upstream in zip(ours, theirs, strict=True)]
    assert HEADER + "".join(csvformat.line(r) for r in rewritten) == theirs_text


# Formulas (issue 9, item 11) -------------------------------------------------------------

def test_formulas_are_kept_raw_and_escaped_on_request(app, api, site_token, monkeypatch):
    """The file keeps what visitors sent (GoatCounter's format and importers need it);
    ?escape=1 gives a copy safe to open in a spreadsheet."""
    site, _ = site_token
    monkeypatch.setattr(exporter, "BATCH", 2)
    store_hits(app, site["id"], [
        make_hit("/a", title='=HYPERLINK("http://evil.example","x")', ref="+1+2",
                 ref_scheme="o"),
        make_hit("/b", title="-2+3", ref="@SUM(A1)", ref_scheme="o"),
        make_hit("/c", title="\tlead, with comma", ref="plain"),
        make_hit("/d", title="fine =later", ref="")])
    export = start(api)
    raw = download(api, export["id"])
    assert '"=HYPERLINK(""http://evil.example"",""x"")"' in raw
    resp = api.get(f"/api/v0/export/{export['id']}/download?escape=1")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/gzip"
    assert resp.headers["Content-Disposition"].endswith('-escaped.csv.gz"')
    escaped = gunzip_text(resp.get_data())
    rows = list(csv.reader(io.StringIO(escaped)))
    raw_rows = list(csv.reader(io.StringIO(raw)))
    assert rows[0] == raw_rows[0]
    assert [(r[1], r[8]) for r in rows[1:]] == [
        ('\'=HYPERLINK("http://evil.example","x")', "'+1+2"), ("'-2+3", "'@SUM(A1)"),
        ("'\tlead, with comma", "plain"), ("fine =later", "")]
    # Nothing else changes.
    for got, was in zip(rows[1:], raw_rows[1:], strict=True):
        assert [c for i, c in enumerate(got) if i not in (1, 8)] == \
            [c for i, c in enumerate(was) if i not in (1, 8)]
    assert api.get(f"/api/v0/export/{export['id']}/download?escape=0").get_data() == \
        api.get(f"/api/v0/export/{export['id']}/download").get_data()


def test_an_escaped_copy_of_an_export_without_rows(api):
    export = start(api)
    resp = api.get(f"/api/v0/export/{export['id']}/download?escape=1")
    assert gunzip_text(resp.get_data()) == HEADER

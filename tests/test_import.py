"""`goatcounter import`: CSV exports (format version 2) read back into a site."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from goatcounter import clock, create_app
from goatcounter.exports import importer
from goatcounter.storage import db
from tests import engines, scenario
from tests.conftest import API, Client, make_site

HEADER = ("2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,Referrer scheme,"
          "Screen size,Location,FirstVisit,Date\n")
ROW = '/a,A,0,,Firefox 131,Linux ,ab-1,0,,o,"1920,0,1",NL,1,2026-11-20T08:00:00Z\n'


@pytest.fixture
def fresh(tmp_path) -> Flask:
    """A second, empty server with one site, to import into."""
    app = create_app({"INSTANCE": str(tmp_path / "fresh"), "TESTING": True,
                      "SECRET_KEY": "test-secret", "COUNT_IN_BACKGROUND": False,
                      **engines.own_database()})
    app.test_client_class = Client
    _, app.config["TEST_TOKEN"] = make_site(app, cname="127.0.0.1")
    return app


def api_of(app: Flask) -> API:
    return API(app.test_client(), app.config["TEST_TOKEN"], "127.0.0.1")


def export_text(api: API) -> str:
    """A new export's CSV, gunzipped."""
    export = api.post("/api/v0/export").get_json()
    data = api.get(f"/api/v0/export/{export['id']}/download").get_data()
    return gzip.decompress(data).decode("utf-8")


def import_file(app: Flask, path: Path, *args: str):
    return app.test_cli_runner().invoke(args=["import", str(path), *args])


def counts(app: Flask) -> dict[str, Any]:
    """Stored hits and what the aggregates say about them."""
    with app.app_context():
        conn = db.get_db()
        return {
            "hits": conn.execute("SELECT count(*) FROM hits").fetchone()[0],
            "pageviews": conn.execute("SELECT sum(pageviews) FROM site_counts").fetchone()[0],
            "visits": conn.execute("SELECT sum(total) FROM site_counts").fetchone()[0],
            "path_visits": conn.execute("SELECT sum(total) FROM hit_counts").fetchone()[0],
        }


def test_round_trip(app, fresh, tmp_path):
    api = scenario.setup(app)
    scenario.count_all(api)
    original = export_text(api)
    path = tmp_path / "export.csv"
    path.write_text(original, encoding="utf-8", newline="")

    result = import_file(fresh, path)
    assert result.exit_code == 0, result.output
    assert "imported 54 rows" in result.output
    # Sessions are kept as they were, so the rows come back identical.
    assert export_text(api_of(fresh)) == original
    assert counts(fresh) == {"hits": 54, "pageviews": 54, "visits": 44, "path_visits": 44}


@pytest.mark.parametrize("name", ["export.csv", "export.csv.gz"])
def test_upstream_export(fresh, tmp_path, name):
    """GoatCounter 2.7.0's own export, plain or gzipped, goes in and comes out as it was."""
    clock.freeze(scenario.RECORDED_AT)
    path = tmp_path / name
    shutil.copy(scenario.FIXTURES / name, path)
    result = import_file(fresh, path)
    assert result.exit_code == 0, result.output
    assert "imported 54 rows into site 1 (54 counted hits); 0 bad rows skipped" in result.output
    theirs = (scenario.FIXTURES / "export.csv").read_text(encoding="utf-8")
    assert export_text(api_of(fresh)) == theirs
    # 44 of the 54 rows are first visits: what upstream's stats/total reports.
    assert counts(fresh)["visits"] == 44


def test_standard_input(fresh):
    clock.freeze(scenario.RECORDED_AT)
    data = (scenario.FIXTURES / "export.csv.gz").read_bytes()
    result = fresh.test_cli_runner().invoke(args=["import", "-"], input=data)
    assert result.exit_code == 0, result.output
    assert "imported 54 rows" in result.output


def test_bad_rows_are_reported_and_skipped(fresh, tmp_path):
    clock.freeze(scenario.RECORDED_AT)
    path = tmp_path / "bad.csv"
    lines = [
        HEADER,                                                                   # 1
        ROW,                                                                      # 2
        '/b,B,0,,,,0-0,0,,o,"0,0,1",,1\n',                                       # 3
        '/c,"two\nlines",0,,,,0-0,0,,o,"0,0,1",,1,2026-11-20T08:00:00Z\n',      # 4-5
        '/d,D,maybe,,,,0-0,0,,o,"0,0,1",,1,2026-11-20T08:00:00Z\n',             # 6
        '/e,E,0,,,,0-0,0,,o,"0,0,1",,1,yesterday\n',                             # 7
        ',E,0,,,,0-0,0,,o,"0,0,1",,1,2026-11-20T08:00:00Z\n',                    # 8
        '/f,F,0,,,,zz,0,,o,"0,0,1",,1,2026-11-20T08:00:00Z\n',                   # 9
        '/g,G,0,,,,0-0,0,,x,"0,0,1",,1,2026-11-20T08:00:00Z\n',                  # 10
        '/h,"H"x,0,,,,0-0,0,,o,"0,0,1",,1,2026-11-20T08:00:00Z\n',               # 11
        "\n",                                                                     # 12
        '/i,I,0,,,,0-0,0,,o,"0,0,1",,1,2099-01-01T00:00:00Z\n',                  # 13
        '/j,J,0,,,,0-0,0,,o,"wide,0,1",,1,2026-11-20T08:00:00Z\n',               # 14
        '/k,K,1,,,,0-0,0,,,"0,0,1",,0,2026-11-20T08:00:00+01:00\n',              # 15
    ]
    path.write_text("".join(lines), encoding="utf-8", newline="")
    result = import_file(fresh, path)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("line ")]
    assert errors == [
        "line 3: wrong number of fields: 13 (want: 14)",
        "line 6: Event: must be a boolean, not 'maybe'",
        "line 7: Date: not an RFC 3339 time: 'yesterday'",
        "line 8: path: must be set, must be longer than 1 characters.",
        "line 9: Session: not a session id: 'zz'",
        "line 10: Referrer scheme: must be one of h, g, c, o, not 'x'",
        "line 11: ',' expected after '\"'",
        "line 13: created_at: in the future.",
        "line 14: Screen size: not a number: 'wide'",
    ]
    assert "imported 3 rows into site 1 (3 counted hits); 9 bad rows skipped" in result.output
    with fresh.app_context():
        rows = db.get_db().execute(
            "SELECT p.path, h.created_at, h.first_visit FROM hits h"
            " JOIN paths p ON p.id = h.path_id ORDER BY h.id").fetchall()
    assert [tuple(r) for r in rows] == [
        ("/a", 1795161600, 1), ("/c", 1795161600, 1), ("/k", 1795158000, 0)]


def test_bad_session_cells_are_reported(fresh, tmp_path):
    clock.freeze(scenario.RECORDED_AT)
    path = tmp_path / "sessions.csv"
    cells = ["1--5", "-1-5", "10000000000000000-1", "0-5"]
    path.write_text(HEADER + "".join(ROW.replace("ab-1", c) for c in cells), encoding="utf-8")
    result = import_file(fresh, path)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("line ")]
    assert errors == [
        "line 2: Session: not a session id: '1--5'",
        "line 3: Session: not a session id: '-1-5'",
        "line 4: Session: not a session id: '10000000000000000-1'",
    ]
    with fresh.app_context():
        (session,) = db.get_db().execute("SELECT session FROM hits").fetchone()
    assert session == bytes(8) + (5).to_bytes(8, "big")


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_byte_order_mark_is_skipped(fresh, tmp_path, gzipped):
    """Spreadsheet programs save CSV with a UTF-8 byte-order mark before the header."""
    clock.freeze(scenario.RECORDED_AT)
    data = b"\xef\xbb\xbf" + (HEADER + ROW).encode()
    path = tmp_path / ("bom.csv.gz" if gzipped else "bom.csv")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    result = import_file(fresh, path)
    assert result.exit_code == 0, result.output
    assert "imported 1 rows" in result.output
    assert counts(fresh)["hits"] == 1


def test_wrong_version(fresh, tmp_path):
    path = tmp_path / "v1.csv"
    path.write_text(HEADER.replace("2Path", "1Path") + ROW, encoding="utf-8")
    result = import_file(fresh, path)
    assert result.exit_code == 1
    assert "wrong version of CSV export: '1' (expected '2')" in result.output
    assert counts(fresh)["hits"] == 0


def test_empty_files(fresh, tmp_path):
    """GoatCounter writes an export without hits as an empty gzip stream; ours have the
    header only. Both import nothing, without complaint."""
    for name, data in (("empty.csv.gz", gzip.compress(b"")), ("header.csv", HEADER.encode())):
        path = tmp_path / name
        path.write_bytes(data)
        result = import_file(fresh, path)
        assert result.exit_code == 0, result.output
        assert "imported 0 rows" in result.output


def test_choosing_the_site(fresh, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text(HEADER + ROW, encoding="utf-8")
    clock.freeze(scenario.RECORDED_AT)
    second, _ = make_site(fresh, cname="second.example.com", email="second@example.com")
    result = import_file(fresh, path)
    assert result.exit_code == 2
    assert "more than one site" in result.output
    result = import_file(fresh, path, "--site", "99")
    assert result.exit_code == 2
    assert "no site with id 99" in result.output
    result = import_file(fresh, path, "--site", str(second["id"]))
    assert result.exit_code == 0, result.output
    with fresh.app_context():
        assert db.get_db().execute("SELECT site_id FROM hits").fetchall()[0][0] == second["id"]


def test_missing_and_broken_files(fresh, tmp_path):
    result = import_file(fresh, tmp_path / "nope.csv")
    assert result.exit_code == 2
    assert "no such file" in result.output
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress((HEADER + ROW).encode())[:-12])
    result = import_file(fresh, broken)
    assert result.exit_code == 1
    assert "can't be read" in result.output


def test_batches(fresh, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "BATCH", 2)
    clock.freeze(scenario.RECORDED_AT)
    path = tmp_path / "many.csv"
    rows = [ROW.replace("/a,A", f"/p{i},P{i}") for i in range(5)]
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    result = import_file(fresh, path)
    assert result.exit_code == 0, result.output
    assert counts(fresh) == {"hits": 5, "pageviews": 5, "visits": 5, "path_visits": 5}


def test_site_collect_settings_apply(tmp_path):
    """What the site doesn't collect isn't taken from the file either."""
    app = create_app({"INSTANCE": str(tmp_path / "private"), "TESTING": True,
                      "SECRET_KEY": "test-secret", "COUNT_IN_BACKGROUND": False})
    # Referrer, screen size and user agent off; locations without regions.
    make_site(app, cname="127.0.0.1", settings={"collect": 256 | 16 | 128})
    clock.freeze(scenario.RECORDED_AT)
    path = tmp_path / "one.csv"
    path.write_text(HEADER + ROW.replace(",NL,", ",US-TX,").replace(",,o,", ",example.com,h,"),
                    encoding="utf-8")
    assert import_file(app, path).exit_code == 0
    with app.app_context():
        row = db.get_db().execute(
            "SELECT h.width, h.location, h.browser_id, h.system_id, r.ref, h.session"
            " FROM hits h JOIN refs r ON r.id = h.ref_id").fetchone()
    assert tuple(row) == (0, "US", None, None, "", bytes.fromhex("00000000000000ab"
                                                                 "0000000000000001"))


def test_a_record_longer_than_the_limit_is_refused_and_the_next_read(tmp_path):
    """A too-long record is skipped to its end in pieces; the line numbers after it
    stay right."""
    import io

    from goatcounter.exports import csvformat
    text = HEADER + "/a" + "x" * 500 + ROW[2:] + ROW + '/c,"one\n' + "y" * 300 + '",0\n' + ROW
    records = list(csvformat.read(io.StringIO(text, newline=""), limit=200))
    assert [(r.line, r.error) for r in records] == [
        (2, "longer than 200 characters"), (3, None), (4, "longer than 200 characters"),
        (6, None)]
    assert records[1].fields[0] == "/a"


def test_a_huge_line_takes_little_memory(fresh, tmp_path):
    """A small gzip file holding one line of 200 MB: refused, read in bounded pieces."""
    import os
    import subprocess
    import sys
    import zlib

    from tests.servers import ROOT
    path = tmp_path / "bomb.csv.gz"
    pack = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as fh:
        fh.write(pack.compress(HEADER.encode() + b"/x"))
        chunk = b"x" * (1 << 20)
        for _ in range(200):
            fh.write(pack.compress(chunk))
        fh.write(pack.compress(ROW[2:].encode() + ROW.encode()))
        fh.write(pack.flush())
    assert path.stat().st_size < 1_000_000
    # The peak of this program's own memory (getrusage would also count the test process
    # it was forked from).
    measure = ("import sys\n"
               "from goatcounter.cli import main\n"
               "try:\n"
               "    main(['import', sys.argv[1]])\n"
               "finally:\n"
               "    status = open('/proc/self/status').read()\n"
               "    peak = status.split('VmHWM:')[1].split()[0]\n"
               "    print(f'peak {peak}', file=sys.stderr)\n")
    env = {**os.environ, "GOATCOUNTER_INSTANCE": fresh.instance_path,
           "GOATCOUNTER_SECRET_KEY": "test-secret", "PYTHONPATH": str(ROOT),
           "GOATCOUNTER_DB": fresh.config["DB_URL"] or fresh.config["DB_PATH"]}
    run = subprocess.run([sys.executable, "-c", measure, str(path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    assert "line 2: longer than 1,048,576 characters" in run.stderr
    assert "imported 1 rows into site 1 (1 counted hits); 1 bad rows skipped" in run.stdout
    peak_mib = int(run.stderr.rsplit("peak ", 1)[1]) / 1024
    # The program itself takes some 60 MiB; the line alone would be 200.
    assert peak_mib < 150, peak_mib

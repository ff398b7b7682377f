"""Imports that are stopped and run again, or run twice: each row goes in once."""
from __future__ import annotations

import gzip
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flask import Flask

from goatcounter import clock, create_app
from goatcounter.accounts import sites
from goatcounter.exports import import_runs, importer
from goatcounter.storage import db
from tests import engines, scenario
from tests.conftest import Client, make_site
from tests.servers import ROOT

HEADER = ("2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,Referrer scheme,"
          "Screen size,Location,FirstVisit,Date\n")


def row(i: int, date: str = "2026-11-20T08:00:00Z") -> str:
    return f'/p/{i},P{i},0,,Firefox 131,Linux ,ab-{i:x},0,,o,"1920,0,1",NL,1,{date}\n'


BAD = '/bad,B,maybe,,,,0-0,0,,o,"0,0,1",,1,2026-11-20T08:00:00Z\n'


@pytest.fixture
def fresh(tmp_path) -> Flask:
    """An empty server with one site, to import into."""
    app = create_app({"INSTANCE": str(tmp_path / "fresh"), "TESTING": True,
                      "SECRET_KEY": "test-secret", "COUNT_IN_BACKGROUND": False})
    app.test_client_class = Client
    make_site(app, cname="127.0.0.1")
    return app


def import_file(app: Flask, path: Path, *args: str):
    return app.test_cli_runner().invoke(args=["import", str(path), *args])


def paths(app: Flask) -> dict[str, int]:
    """How often each path was stored."""
    return {r[0]: r[1] for r in engines.query(
        app, "SELECT p.path, count(*) FROM hits h JOIN paths p ON p.id = h.path_id"
        " GROUP BY p.path")}


def runs(app: Flask) -> list[dict]:
    return [dict(r) for r in engines.query(app, "SELECT * FROM imports ORDER BY id")]


def refusals(app: Flask) -> list[tuple[int, int, str]]:
    return [tuple(r) for r in engines.query(
        app, "SELECT import_id, line, reason FROM import_refusals ORDER BY import_id, line")]


# Stopped at any point --------------------------------------------------------------------

def _file(tmp_path: Path) -> tuple[Path, set[str]]:
    """Ten rows, two of them bad (lines 4 and 9)."""
    lines = [row(i) for i in range(10)]
    lines[2] = lines[7] = BAD
    path = tmp_path / "ten.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8", newline="")
    return path, {f"/p/{i}" for i in range(10) if i not in (2, 7)}


class Killed(BaseException):
    """Stands for the process dying at this point: nothing after it runs."""


# With batches of 3, the ten rows take 5 writes (the record, then 4 batches).
@pytest.mark.parametrize(("where", "at"), [("before-write", n) for n in range(1, 6)]
                         + [("inside-transaction", n) for n in range(1, 5)])
def test_stopped_at_any_point_and_run_again(fresh, tmp_path, monkeypatch, where, at):
    """Whatever point the first run dies at (before a transaction, or inside one after
    its rows were written), the second run stores every row once, refuses the bad ones
    once, and finishes the same import."""
    monkeypatch.setattr(importer, "BATCH", 3)
    clock.freeze(scenario.RECORDED_AT)
    path, want = _file(tmp_path)
    calls = []
    real_write, real_advance = db.write, import_runs.advance
    # Only the import's own calls count (it runs in this thread): a background thread of
    # another app in this process must neither move the count nor be killed.
    ours = threading.get_ident()

    def dying_write(fn, conn=None, wait=True):
        if threading.get_ident() == ours:
            calls.append(fn)
            if len(calls) == at:
                raise Killed
        return real_write(fn, conn, wait)

    def dying_advance(*args, **kwargs):
        real_advance(*args, **kwargs)  # the rows and the position are written...
        if threading.get_ident() == ours:
            calls.append(args)
            if len(calls) == at:
                raise Killed  # ...and the transaction never commits

    with monkeypatch.context() as patch, pytest.raises(Killed):
        if where == "before-write":
            patch.setattr(db, "write", dying_write)
        else:
            patch.setattr(import_runs, "advance", dying_advance)
        # A dead process marks nothing as failed.
        patch.setattr(import_runs, "fail", lambda *a: None)
        import_file(fresh, path)
    result = import_file(fresh, path)
    assert "imported 8 rows into site 1 (8 counted hits); 2 bad rows skipped" in result.output
    assert paths(fresh) == dict.fromkeys(want, 1)
    [run] = runs(fresh)
    assert (run["state"], run["rows_done"], run["rows_imported"], run["rows_refused"]) == \
        ("done", 10, 8, 2)
    assert [line for _, line, _ in refusals(fresh)] == [4, 9]


def _big(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "big.csv.gz"
    date = clock.rfc3339_seconds(int(time.time()) - 86400)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write(HEADER)
        for i in range(rows):
            fh.write(row(i, date))
    return path


def _cli(app: Flask, *args: str) -> list[str]:
    return [sys.executable, "-m", "goatcounter", *args]


def _env(app: Flask) -> dict[str, str]:
    return {**os.environ, "GOATCOUNTER_INSTANCE": app.instance_path,
            "GOATCOUNTER_SECRET_KEY": "test-secret", "PYTHONPATH": str(ROOT)}


def _hits(app: Flask) -> int:
    try:
        return engines.query(app, "SELECT count(*) FROM hits")[0][0]
    except Exception:  # the database may not be there yet
        return 0


def test_killed_halfway_and_run_again(fresh, tmp_path):
    """The case from the report: 20,000 rows, the import killed with SIGKILL after a
    few thousand, run again: 20,000 hits, none twice."""
    path = _big(tmp_path, 20_000)
    first = subprocess.Popen(_cli(fresh, "import", str(path)), env=_env(fresh),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _hits(fresh) < 3_000 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 0 < _hits(fresh) < 20_000, "the first run was not stopped halfway"
    again = subprocess.run(_cli(fresh, "import", str(path)), env=_env(fresh),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming import 1" in again.stderr
    assert "imported 20000 rows" in again.stdout
    stored = paths(fresh)
    assert len(stored) == 20_000 and set(stored.values()) == {1}


def test_another_run_of_the_same_import_stores_nothing_twice(fresh, tmp_path):
    """Two runs of one import at once: the one that falls behind stops, storing nothing."""
    clock.freeze(scenario.RECORDED_AT)
    path, _ = _file(tmp_path)
    with fresh.app_context(), importer.source(str(path)) as raw:
        found = importer.recognise(raw)
        site = sites.get(db.get_db(), 1)
        one = db.write(lambda c: import_runs.begin(c, 1, found, "ten.csv"))
        two = db.write(lambda c: import_runs.begin(c, 1, found, "ten.csv"))
        assert two.id == one.id and two.resumed
        with importer.text_of(raw) as text:
            importer.run(site, text, one)
        with importer.text_of(raw) as text, pytest.raises(import_runs.Conflict):
            importer.run(site, text, two)
    assert set(paths(fresh).values()) == {1}
    assert runs(fresh)[0]["rows_done"] == 10


# Imported before ------------------------------------------------------------------------

def test_a_file_imported_before_is_skipped(fresh, tmp_path):
    clock.freeze(scenario.RECORDED_AT)
    path, want = _file(tmp_path)
    assert import_file(fresh, path).exit_code == 1  # two bad rows
    result = import_file(fresh, path)
    assert result.exit_code == 0, result.output
    assert "already imported into site 1 (import 1" in result.output
    assert "nothing imported (--force imports it again)" in result.output
    # The same export gzipped is the same file.
    zipped = tmp_path / "ten.csv.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    assert "already imported" in import_file(fresh, zipped).output
    assert paths(fresh) == dict.fromkeys(want, 1)
    result = import_file(fresh, zipped, "--force")
    assert "imported 8 rows" in result.output
    assert paths(fresh) == dict.fromkeys(want, 2)
    assert [(r["id"], r["state"]) for r in runs(fresh)] == [(1, "done"), (2, "done")]


def test_the_record_of_an_import(fresh, tmp_path):
    """What a page showing imports will read: the file, the counts, why rows were refused."""
    clock.freeze(scenario.RECORDED_AT)
    path, _ = _file(tmp_path)
    import_file(fresh, path)
    [run] = runs(fresh)
    assert run | {"hash": None} == {
        "id": 1, "site_id": 1, "hash": None, "name": str(path),
        "size": path.stat().st_size, "rows_total": 10, "rows_done": 10, "rows_imported": 8,
        "rows_refused": 2, "hits_counted": 8, "state": "done", "error": None,
        "started_at": "2026-11-26T12:00:00Z", "updated_at": "2026-11-26T12:00:00Z",
        "finished_at": "2026-11-26T12:00:00Z"}
    assert refusals(fresh) == [(1, 4, "Event: must be a boolean, not 'maybe'"),
                               (1, 9, "Event: must be a boolean, not 'maybe'")]


def test_an_import_that_failed_is_resumed(fresh, tmp_path):
    clock.freeze(scenario.RECORDED_AT)
    path = tmp_path / "v1.csv"
    path.write_text(HEADER.replace("2Path", "1Path") + row(1), encoding="utf-8")
    assert import_file(fresh, path).exit_code == 1
    [run] = runs(fresh)
    assert run["state"] == "failed" and "wrong version" in run["error"]


# Progress -------------------------------------------------------------------------------

def test_a_progress_bar_on_a_terminal(fresh, tmp_path):
    path = _big(tmp_path, 3_000)
    main, other = pty.openpty()
    proc = subprocess.Popen(_cli(fresh, "import", str(path)), env=_env(fresh),
                            stdin=other, stdout=other, stderr=other)
    os.close(other)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(main, 4096)
        except OSError:  # the other end closed
            break
        if not data:
            break
        out += data
    os.close(main)
    assert proc.wait(timeout=60) == 0, out
    text = out.decode(errors="replace")
    assert "3000/3000" in text, text
    assert "rows/s" in text and "left" in text, text
    assert "imported 3000 rows" in text

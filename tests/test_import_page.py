"""Importing from the settings page (POST /settings/export/import, exports/uploads.py):
checked and queued at once, imported in the background a batch at a time, resumed by
another worker after a restart, and refused whole when it is not an export."""
from __future__ import annotations

import gzip
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from goatcounter import clock, create_app
from goatcounter.exports import uploads
from tests.conftest import Client, query
from tests.test_import_runs import HEADER, row
from tests.test_settings_pages import Pages, assert_page, errors_of, set_password
from tests.test_settings_pages import world as world

FIXTURES = Path(__file__).parent / "fixtures"


def upload(pages: Pages, data: bytes, name: str = "export.csv.gz", **fields: str):
    return pages.post("/settings/export/import", {"csv": (io.BytesIO(data), name), **fields},
                      content_type="multipart/form-data")


def status(pages: Pages, upload_id: int) -> dict[str, Any]:
    resp = pages.client.get(f"/settings/export/import/{upload_id}",
                            headers={"Host": pages.host, "Accept": "application/json"})
    assert resp.status_code == 200
    return resp.get_json()


def nothing_kept(app: Flask) -> bool:
    folder = Path(app.config["IMPORT_PATH"])
    files = list(folder.iterdir()) if folder.exists() else []
    return (not files and not query(app, "SELECT * FROM import_uploads")
            and not query(app, "SELECT * FROM hits"))


@pytest.mark.parametrize("name", ["export.csv.gz", "export.csv"])
def test_import_the_export_fixture(app, world, name):
    pages, api = world["pages"], world["api"]
    resp = upload(pages, (FIXTURES / name).read_bytes(), name)
    assert (resp.status_code, resp.headers["Location"]) == (303, "/settings/export/import/1")
    # Queued, nothing imported yet: the request didn't wait for it.
    assert status(pages, 1)["state"] == "queued"
    assert query(app, "SELECT count(*) FROM hits")[0][0] == 0
    html = assert_page(pages.get("/settings/export/import/1"), 200)
    assert 'data-import-progress="/settings/export/import/1"' in html
    uploads.run_all(app)
    got = status(pages, 1)
    assert got == {"state": "done", "error": "", "done": 54, "total": 54, "imported": 54,
                   "refused": 0, "hits": 54}
    assert query(app, "SELECT count(*) FROM hits")[0][0] == 54
    total = api.get("/api/v0/stats/total?start=2026-11-01&end=2026-11-30").get_json()
    assert total["total"] > 0
    html = assert_page(pages.get("/settings/export/import/1"), 200)
    assert "Done: 54 rows imported, 0 refused." in html and "data-import-progress" not in html
    # The uploaded file goes once imported; the export page lists the import.
    assert not list(Path(app.config["IMPORT_PATH"]).iterdir())
    assert "export.csv" in pages.get("/settings/export").get_data(as_text=True)


def test_refused_rows_are_listed_with_why(app, world):
    pages = world["pages"]
    text = HEADER + row(1) + '/bad,B,maybe,,,,0-0,0,,o,"0,0,1",,1,2026-11-20T08:00:00Z\n' + row(2)
    assert upload(pages, text.encode(), "some.csv").status_code == 303
    uploads.run_all(app)
    got = status(pages, 1)
    assert (got["state"], got["imported"], got["refused"]) == ("done", 2, 1)
    html = pages.get("/settings/export/import/1").get_data(as_text=True)
    assert "Line 3: Event: must be a boolean, not &#39;maybe&#39;" in html


def test_the_same_file_twice(app, world):
    pages = world["pages"]
    data = (FIXTURES / "export.csv.gz").read_bytes()
    upload(pages, data)
    uploads.run_all(app)
    upload(pages, data)
    uploads.run_all(app)
    got = status(pages, 2)
    assert got["state"] == "failed" and "already imported" in got["error"]
    assert query(app, "SELECT count(*) FROM hits")[0][0] == 54
    upload(pages, data, force="on")
    uploads.run_all(app)
    assert status(pages, 3)["state"] == "done"
    assert query(app, "SELECT count(*) FROM hits")[0][0] == 108


@pytest.mark.parametrize(("data", "name", "message"), [
    (b"Name,Visits\nhome,3\n", "report.csv", "this is not a GoatCounter CSV export"),
    (b"1Path,Title\n", "old.csv", "wrong version of CSV export: '1'"),
    (b"\x1f\x8b\x08\x00broken", "broken.csv.gz", "can't be read as a CSV export"),
    (gzip.compress(b"\x00\x01\x02 not text at all"), "noise.gz", "not a GoatCounter CSV"),
])
def test_not_an_export_is_refused_whole(app, world, data, name, message):
    html = assert_page(upload(world["pages"], data, name), 400)
    assert message in errors_of(html)["csv"]
    assert nothing_kept(app)


def test_no_file(app, world):
    resp = world["pages"].post("/settings/export/import", {}, content_type="multipart/form-data")
    assert errors_of(assert_page(resp, 400))["csv"] == "choose a file to import"


@pytest.fixture
def small_limit(app_config) -> Flask:
    app_config["IMPORT_MAX_BYTES"] = 2000
    app = create_app(app_config)
    app.test_client_class = Client
    return app


def test_a_file_over_the_limit(small_limit):
    app = small_limit
    from tests.conftest import make_site
    make_site(app, cname="stats.example.com", email="admin@example.com")
    set_password(app, 1)
    pages = Pages(app.test_client())
    pages.sign_in()
    big = (HEADER + "".join(row(i) for i in range(100))).encode()
    assert 2000 < len(big) < 2000 + 64 * 1024
    # Over the limit but within the form's slack: the form says so, beside the field.
    html = assert_page(upload(pages, big, "big.csv"), 413)
    assert "the most this server takes" in errors_of(html)["csv"]
    # Far over it: read and thrown away, then the page says so.
    huge = (HEADER + "".join(row(i) for i in range(2000))).encode()
    assert len(huge) > 2000 + 64 * 1024
    html = assert_page(upload(pages, huge, "huge.csv"), 413)
    assert "the most this server takes" in html
    assert nothing_kept(app)
    # Within it, it goes.
    assert upload(pages, (HEADER + row(1)).encode(), "small.csv").status_code == 303


def big_export(rows: int) -> bytes:
    return gzip.compress((HEADER + "".join(row(i) for i in range(rows))).encode())


def test_a_restarted_worker_goes_on_where_the_first_stopped(app, world, monkeypatch):
    pages = world["pages"]
    monkeypatch.setattr(uploads, "SLICE", 0.0)  # one batch per tick
    upload(pages, big_export(3500), "big.csv.gz")
    first = uploads.Worker()
    assert first.tick(app) and first.tick(app)
    got = status(pages, 1)
    assert (got["state"], got["done"], got["total"]) == ("running", 2 * uploads.BATCH, 3500)
    # The first worker's process dies (its file closes with it) and leaves its lease.
    assert first.current is not None
    first.current.close()
    first.current = None
    second = uploads.Worker()
    assert not second.tick(app)  # the lease still holds
    assert status(pages, 1)["done"] == 2 * uploads.BATCH
    clock.advance(uploads.LEASE + 1)
    uploads.run_all(app, second)
    got = status(pages, 1)
    assert (got["state"], got["done"], got["imported"]) == ("done", 3500, 3500)
    # Every row once.
    assert query(app, "SELECT count(*), count(DISTINCT path_id) FROM hits")[0][:] == (3500, 3500)


def test_two_workers_share_nothing_twice(app, world, monkeypatch):
    pages = world["pages"]
    monkeypatch.setattr(uploads, "SLICE", 0.0)
    upload(pages, big_export(2500), "a.csv.gz")
    a, b = uploads.Worker(), uploads.Worker()
    for _ in range(50):
        a.tick(app)
        b.tick(app)
        if status(pages, 1)["state"] == "done":
            break
    assert status(pages, 1)["state"] == "done"
    assert a.current is None and b.current is None
    assert query(app, "SELECT count(*) FROM hits")[0][0] == 2500


def test_other_sites_imports_are_not_found(app, world):
    from tests.conftest import make_site
    pages = world["pages"]
    upload(pages, (FIXTURES / "export.csv").read_bytes(), "export.csv")
    make_site(app, cname="other.example.com", email="other@example.com")
    set_password(app, 2)
    other = Pages(app.test_client(), host="other.example.com")
    other.sign_in("other@example.com")
    assert_page(other.get("/settings/export/import/1"), 404)
    assert re.search("export.csv", other.get("/settings/export").get_data(as_text=True)) is None


def test_uploads_folder_is_private(app, world):
    upload(world["pages"], (FIXTURES / "export.csv").read_bytes(), "export.csv")
    (path,) = query(app, "SELECT path FROM import_uploads")[0]
    assert os.stat(path).st_mode & 0o077 == 0
    assert os.stat(Path(path).parent).st_mode & 0o077 == 0

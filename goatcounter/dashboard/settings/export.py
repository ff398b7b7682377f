"""Export and import: GET|POST /settings/export (the site's exports; start one),
GET /settings/export/{id} (download one), POST /settings/export/import (upload a CSV
export to import) at upstream's paths, and GET /settings/export/import/{id} (how an
import is going) (access s).

An export is written by the same code as POST /api/v0/export, and downloaded as
GET /api/v0/export/{id}/download sends it: the same file. An upload is checked and
queued, and the request answers at once; the workers' background threads import it
(exports/uploads.py) while the page shows how far it got.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, request
from werkzeug.wrappers import Response

from goatcounter import collect
from goatcounter.api import export as export_api
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.errors import NotFound
from goatcounter.exports import exporter, uploads
from goatcounter.responses import json_response
from goatcounter.storage import db
from goatcounter.web import pages

bp = Blueprint("settings_export", __name__)

SHOWN = 10


def _exports(site_id: int) -> list[dict[str, Any]]:
    rows = db.get_db().execute(
        "SELECT id, start_from_hit_id, last_hit_id, created_at, finished_at, num_rows, size,"
        " hash, error FROM exports WHERE site_id = :s ORDER BY id DESC LIMIT :n",
        {"s": site_id, "n": SHOWN}).fetchall()
    return [{**dict(r), "expired": exporter.expired(r)} for r in rows]


def page(status: int = 200, **context: Any) -> Response:
    """The export and import page."""
    site = access.current_site()
    exports = _exports(site["id"])
    context.setdefault("errors", forms.Errors())
    return forms.page("settings/export.html", "export", status, exports=exports,
                      imports=uploads.recent(db.get_db(), site["id"], SHOWN),
                      max_bytes=current_app.config["IMPORT_MAX_BYTES"],
                      max_size=size_text(current_app.config["IMPORT_MAX_BYTES"]),
                      keeps_hits=bool(site["settings"]["collect"] & collect.COLLECT_HITS),
                      cursor=next((e["last_hit_id"] for e in exports if e["last_hit_id"]), 0),
                      hours=exporter.retention_hours(), **context)


@bp.route("/settings/export", methods=["GET"])
@access.login_required(access="s")
def export() -> Response:
    """GET /settings/export: the last exports (with download links while their files are
    kept), the form to start one, and the import form."""
    return page()


@bp.route("/settings/export", methods=["POST"])
@access.login_required(access="s")
def start_export() -> Response:
    """POST /settings/export: `startFrom` (a hit id; only later hits are exported, as
    upstream's field). The file is written before the reply: 303 back to the list."""
    errors = forms.Errors()
    start = forms.whole_number("startFrom", errors)
    if start < 0:
        errors.add("startFrom", "must be 0 or more")
    if errors:
        return page(400, errors=errors)
    row = exporter.create(db.get_db(), access.current_site(), start)
    return forms.done(f"Export done: {row['num_rows']} pageviews; download it below.",
                      "settings_export.export")


@bp.route("/settings/export/<int:export_id>", methods=["GET"])
@access.login_required(access="s")
def download(export_id: int) -> Response:
    """GET /settings/export/{id}: the export's file, as the API sends it; 404 for another
    site's, 410 once deleted."""
    row = exporter.get(db.get_db(), access.current_site()["id"], export_id)
    if row is None or row["finished_at"] is None:
        raise NotFound()
    return export_api.file_response(dict(row))


# Imports -------------------------------------------------------------------------------

IMPORT_PATH = "/settings/export/import"


def size_text(n: int) -> str:
    """A size as people read it (256 MiB, 2 KiB)."""
    if n >= 1 << 20:
        return f"{n / (1 << 20):.0f} MiB"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def _too_large() -> str:
    return (f"this file is larger than {size_text(current_app.config['IMPORT_MAX_BYTES'])},"
            " the most this server takes; split it, or use `goatcounter import`")


def _import_limit() -> Response | None:
    """The import's upload limit instead of the pages' (it runs before the form is read
    for its token). A body over it is read and thrown away before the answer, so that
    the browser sees the page saying so rather than a broken connection."""
    if request.path != IMPORT_PATH or request.method != "POST":
        return None
    limit = int(current_app.config["IMPORT_MAX_BYTES"])
    # Room for the other fields and the multipart framing.
    request.max_content_length = limit + 64 * 1024
    length = request.content_length
    if length is None or length <= limit + 64 * 1024:
        return None
    stream = request.environ["wsgi.input"]
    left = length
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        left -= len(chunk)
    return pages.error_page(413, _too_large())


@bp.route(IMPORT_PATH, methods=["POST"])
@access.login_required(access="s")
def start_import() -> Response:
    """POST /settings/export/import: `csv`, a CSV export (gzipped or not) as a file
    upload; `force` imports a file that was imported into the site before. Checked and
    queued: 303 to its progress page. Not an export, none, or too large: the page again
    (400, 413) with why; nothing is kept."""
    errors = forms.Errors()
    upload = request.files.get("csv")
    if upload is None or not upload.filename:
        errors.add("csv", "choose a file to import")
        return page(400, errors=errors)
    upload.stream.seek(0, 2)
    size = upload.stream.tell()
    upload.stream.seek(0)
    if size > current_app.config["IMPORT_MAX_BYTES"]:
        errors.add("csv", _too_large())
        return page(413, errors=errors)
    site, user = access.current_site(), access.current_user()
    try:
        row = uploads.accept(db.get_db(), site, user["id"], upload.filename, upload.stream,
                             force=forms.checked("force"))
    except uploads.UploadError as exc:
        errors.add("csv", str(exc))
        return page(400, errors=errors)
    current_app.extensions["goatcounter_pending"].wake()
    return forms.done("The import started; this page shows how it goes.",
                      "settings_export.import_status", upload_id=row["id"])


@bp.route(IMPORT_PATH + "/<int:upload_id>", methods=["GET"])
@access.login_required(access="s")
def import_status(upload_id: int) -> Response:
    """GET /settings/export/import/{id}: how an import goes (rows done of all, refused
    with why) and, once done, what it did. With `Accept: application/json`, the numbers
    only: `{"state", "done", "total", "imported", "refused", "hits", "error"}`."""
    found = uploads.get(db.get_db(), access.current_site()["id"], upload_id)
    if found is None:
        raise NotFound()
    numbers = uploads.progress(found)
    if request.accept_mimetypes.best == "application/json":
        return json_response(numbers)
    return forms.page("settings/import.html", "export", upload=found, numbers=numbers)


def init_app(app: Flask) -> None:
    """The import's upload limit comes before everything that reads a form."""
    app.before_request_funcs.setdefault(None, []).insert(0, _import_limit)

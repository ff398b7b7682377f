"""Export and import: GET|POST /settings/export (the site's exports; start one),
GET /settings/export/{id} (download one), at upstream's paths (access s).

An export is written by the same code as POST /api/v0/export, and downloaded as
GET /api/v0/export/{id}/download sends it: the same file.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint
from werkzeug.wrappers import Response

from goatcounter import collect
from goatcounter.api import export as export_api
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.errors import NotFound
from goatcounter.exports import exporter
from goatcounter.storage import db

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

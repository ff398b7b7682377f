"""Exports: start a CSV export of the site's hits, read its status, download its file
(spec 10.4 to 10.6). `goatcounter import` (importer.py) reads these files back."""
from __future__ import annotations

import os
import re
from typing import Any

from flask import Blueprint, Response, request, send_file

from goatcounter import decoding, validation
from goatcounter.accounts import tokens
from goatcounter.errors import BadRequest, NotFound
from goatcounter.exports import exporter
from goatcounter.responses import json_response
from goatcounter.storage import db

bp = Blueprint("export", __name__, url_prefix="/api/v0")

_START_FIELDS = {"format": decoding.j_str, "start_from_hit_id": decoding.j_int,
                 "start_from_day": decoding.j_time}


@bp.route("/export", methods=["POST"])
def start() -> Response:
    """POST /api/v0/export: export the site's hits as a gzipped CSV file (export).

    Body: `{"start_from_hit_id": int, "format": "csv"}`, both optional; only hits with
    an id above `start_from_hit_id` are exported. The file is written before the reply,
    so the reply (202, the Export object) has `finished_at` set and the file can be
    downloaded at once. `last_hit_id` is the cursor for the next export.
    """
    who = tokens.authenticate(tokens.PERM_EXPORT)
    args = decoding.decode_body(_START_FIELDS)
    fmt = args.get("format") or exporter.FORMAT_CSV
    if fmt != exporter.FORMAT_CSV:
        raise BadRequest(f"unknown format: \"{fmt}\"; this server writes \"csv\" exports")
    if args.get("start_from_day") is not None:
        raise BadRequest("start_from_day is only valid for JSON exports")
    row = exporter.create(db.get_db(), who.site, args.get("start_from_hit_id", 0))
    return json_response(exporter.to_api(row), 202)


def _find(raw_id: str) -> dict[str, Any]:
    """The export of the URL, after auth and the id check, as upstream orders them."""
    who = tokens.authenticate(tokens.PERM_EXPORT)
    row = exporter.get(db.get_db(), who.site["id"], validation.parse_id(raw_id))
    if row is None:
        raise NotFound()
    return dict(row)


@bp.route("/export/<export_id>", methods=["GET"])
def status(export_id: str) -> Response:
    """GET /api/v0/export/{id}: the Export object of one of the site's exports (export).

    404 for an export of another site or none; 400 when the id is not a whole number.
    """
    row = _find(export_id)
    exporter.purge()
    return json_response(exporter.to_api(row))


_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@bp.route("/export/<export_id>/download", methods=["GET"])
def download(export_id: str) -> Response:
    """GET /api/v0/export/{id}/download: the export file (export).

    200 with the gzipped CSV as `application/gzip`, an attachment; the body is the file
    itself, not a compressed transfer, so clients gunzip it themselves. 202 `still
    being generated` for an export without `finished_at`; 410 once the file was deleted
    after EXPORT_RETENTION_HOURS. A file this server doesn't hold is first written again
    from the export's hits (410 if they changed since). The file has every value as it
    was sent; `?escape=1` gives a copy in which cells starting with = + - @ (formulas to
    a spreadsheet) start with `'`, for opening in a spreadsheet (not for importing).
    """
    row = _find(export_id)
    escape = decoding.q_bool(request.args.get("escape", ""), "escape")
    if row["finished_at"] is None:
        # Upstream's documented reply while a background export runs; ours are recorded
        # only once finished, so only a record made some other way gets here.
        return json_response({"error": "still being generated"}, 202)
    return file_response(row, escape)


def file_response(row: dict[str, Any], escape: bool = False) -> Response:
    """The reply with an export's file (the API's download and the settings page's)."""
    path = exporter.file_for_download(row)
    name = os.path.basename(path)
    if escape:
        name = name.removesuffix(".csv.gz") + "-escaped.csv.gz"
        response = Response(exporter.escaped(path), mimetype="application/gzip")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    response = send_file(path, mimetype="application/gzip", as_attachment=True,
                         download_name=name)
    if _SAFE_NAME.fullmatch(name):
        # Upstream quotes the name; Werkzeug would leave a plain one bare.
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
